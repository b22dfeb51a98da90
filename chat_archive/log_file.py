"""The log as JSON lines: what `export-log` writes and `import` reads back (and `log` output, bare events).

A backup line is ``{"position": N, "version": V, "event": {...}}``: an event at its log position and its
version in its stream, as the store holds it. Both are kept by a restore because records name events by
them: a purge's record names the versions it deleted and a ``PurgeApplied`` names its purge's position;
renumbered, they would name other events (the next purge would finish a restored purge by deleting events
the source kept). After the events come the audit trails' records (who read what), each
``{"trail": NAME, "seq": N, "event": {...}}``: a record at its sequence number in its trail, which a restore
keeps beside the restored store's own trail (``archive.copied_trails``). The file ends with a trailer
holding the lines' count and SHA-256 and the store's chain heads (a stream whose last events were purged goes
on at its head's version, from its link), the audit trails' at their last records in the file, and how far the
log's checkpoints came with the store's copied trails (``archive.copied_trails``: a restore keeps them, one copy
deeper).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, BinaryIO

import msgspec

from archive.codec import from_json, to_json
from archive.errors import EventDecodeError
from archive.events import MAX_NUMBER, Capture, ChainHead, Event, EventsPurged, PurgeApplied, Recorded

GZIP_MAGIC = b"\x1f\x8b"
# Records naming events by the positions and versions of the store that wrote them: renumbered, they name
# others. (A checkpoint names versions too, but without purges a renumbered log has the same versions.)
PURGE_KINDS = (EventsPurged, PurgeApplied)
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_number = msgspec.json.Decoder(Annotated[int, msgspec.Meta(ge=1, le=MAX_NUMBER)]).decode
_name = msgspec.json.Decoder(str).decode


class _Trailer(msgspec.Struct):
    sha256: str | None = None
    count: int | None = None
    heads: list[ChainHead] = []
    copied_checkpoints: dict[str, int] = {}


_trailer = msgspec.json.Decoder(_Trailer).decode

# The largest line of new events `import` takes. An XMPP server refuses stanzas far smaller (Prosody: 256 KiB, ejabberd:
# 64 KiB from clients), so a larger line is a mistake (a file's bytes in a body), and it would make a day page of its
# size for every reader. A backup is exempt: it holds what its store held, and a restore must not drop any of it.
MAX_LINE_BYTES = 1 << 20


def _event(raw: bytes) -> Event:
    """A line's event; one without ``recorded_at`` (written by hand, or another archive's export, which knows when
    things were said, not when this archive recorded them) is recorded at its ``occurred_at``: the same file then
    imports the same events, and an import claims no later knowledge of a room than the file gives. Filled in only
    when the event does not decode: no cost for the lines `log` and `export-log` write."""
    try:
        return from_json(raw)
    except EventDecodeError:
        fields = _fields(raw)
        if "recorded_at" in fields or "occurred_at" not in fields:
            raise
        return from_json(msgspec.json.encode({**fields, "recorded_at": fields["occurred_at"]}))


# A bare event (not a line as `log` prints it, which says how this archive captured it by leaving out ``live``) came
# from elsewhere: taken as ``live``, its room's presence would read as known where this archive never watched.
_IMPORTED = msgspec.json.encode(Capture.IMPORT)


def _bare_event(raw: bytes, fields: dict[str, msgspec.Raw]) -> Event:
    """A bare event's line, captured by ``import`` unless it says otherwise."""
    return _event(raw if "capture" in fields else msgspec.json.encode({**fields, "capture": msgspec.Raw(_IMPORTED)}))


def backup_line(version: int, record: Recorded) -> bytes:
    return b'{"position":%d,"version":%d,"event":%s}\n' % (record.position, version, to_json(record.event))


def audit_line(trail: str, record: Recorded) -> bytes:
    return b'{"trail":%s,"seq":%d,"event":%s}\n' % (msgspec.json.encode(trail), record.position, to_json(record.event))


def trailer(digest: str, count: int, heads: Iterable[ChainHead], copied_checkpoints: dict[str, int]) -> bytes:
    return msgspec.json.encode({"sha256": digest, "count": count, "heads": list(heads),
                                "copied_checkpoints": copied_checkpoints}) + b"\n"  # fmt: skip


def _is_trailer(line: bytes) -> bool:
    return line.startswith(b'{"sha256"')


@dataclass
class Entry:
    """A line's event, with its position and version when the line holds them (a backup's do); an audit record's
    line: its trail, its sequence number as ``position``."""

    event: Event
    line: int
    position: int | None = None
    version: int | None = None
    trail: str | None = None


class LogFile:
    """A file's lines (gzip-compressed or not). A trailer ``{"sha256": ..., "count": N, ...}`` (``export-log``,
    exports) must match the lines before it, or the file is refused; its chain heads are kept in ``heads``."""

    def __init__(self, raw: BinaryIO, source: str):
        self.raw, self.source = raw, source
        self.heads: list[ChainHead] = []
        self.copied_checkpoints: dict[str, int] = {}
        self.ends_with_trailer = False  # once read: the last line was a trailer
        self.oversized: int | None = None  # once read: the first line longer than MAX_LINE_BYTES

    def lines(self) -> Iterator[bytes]:
        stream = gzip.GzipFile(fileobj=self.raw) if self.raw.peek(2)[:2] == GZIP_MAGIC else self.raw
        digest, count = hashlib.sha256(), 0
        try:
            for number, line in enumerate(stream, 1):
                if _is_trailer(line):
                    found = _trailer(line)
                    if (found.sha256, found.count) != (digest.hexdigest(), count):
                        raise EventDecodeError(f"{self.source}: the lines do not match the trailer's SHA-256 and count: "
                                               "the file was altered or is incomplete")  # fmt: skip
                    self.heads, self.copied_checkpoints = found.heads, found.copied_checkpoints
                    self.ends_with_trailer = True
                else:
                    digest.update(line)
                    count += 1
                    self.ends_with_trailer = False
                    if self.oversized is None and len(line) > MAX_LINE_BYTES:
                        self.oversized = number
                yield line
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
            raise EventDecodeError(f"{self.source}: cannot read it: {e}") from None
        except msgspec.DecodeError as e:
            raise EventDecodeError(f"{self.source}: its trailer is not valid ({e})") from None

    def entries(self) -> Iterator[Entry]:
        """The events of the lines: ``{"position": N, ["version": V,] "event": {...}}`` or a bare event; blank
        lines and the trailer are skipped."""
        for number, raw in enumerate(self.lines(), 1):
            if not raw.strip() or _is_trailer(raw):
                continue
            try:
                fields = _fields(raw)
                if "event" not in fields:
                    yield Entry(_bare_event(raw, fields), number)
                    continue
                if "trail" in fields:
                    seq = _number(fields.get("seq", b"0"))
                    yield Entry(from_json(fields["event"]), number, seq, trail=_name(fields["trail"]))
                    continue
                position, version = (_number(fields[k]) if k in fields else None for k in ("position", "version"))
                yield Entry(_event(fields["event"]), number, position, version)
            except msgspec.DecodeError as e:
                raise EventDecodeError(f"{self.source}, line {number}: not a valid line ({e})") from None
            except EventDecodeError as e:
                raise EventDecodeError(f"{self.source}, line {number}: {e}") from None
