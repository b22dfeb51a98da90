"""Text from chat rooms made safe for where it goes: plain-text transcripts, CSV cells, log lines.

Anyone in a room decides what a body, a nick or a subject holds; none of it may
forge a transcript line, run as a spreadsheet formula or forge a log entry.
"""

from __future__ import annotations

import re
import unicodedata

_LINE_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
CONTINUATION = "\n    "
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def _visible(c: str) -> str:
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def _controls_shown(text: str, shown=("Cc", "Cf"), kept: str = "\t") -> str:
    """Control and format characters (terminal escapes, bidi overrides) as visible escapes."""
    return "".join(_visible(c) if c not in kept and unicodedata.category(c) in shown else c for c in text)


def plain_line(text: str) -> str:
    """One line of a plain-text transcript: a line break inside it continues on an indented
    line, so every line that starts at the margin is a real one."""
    return CONTINUATION.join(_controls_shown(part) for part in _LINE_BREAKS.split(text))


def one_line(text: str) -> str:
    """Text that must stay on one line (a mail header of an export): line breaks, tabs, control and format
    characters as visible escapes."""
    return _controls_shown(text, ("Cc", "Cf", "Zl", "Zp"), kept="")


def csv_cell(value: str) -> str:
    """A cell no spreadsheet reads as a formula (OWASP: a leading quote); the JSON lines export
    carries the text exactly."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def log_safe(value: object, limit: int = 200) -> str:
    """A value from a request as one log line shows it: quoted, escaped, cut short."""
    text = str(value)
    shown = repr(text[:limit])
    return shown + ("..." if len(text) > limit else "")
