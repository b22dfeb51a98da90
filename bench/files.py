"""Files the bench writes in a workdir (markers, configs, outputs, logs), written so that a workdir
seeded with hard links of another's files (``cp -al``, to reuse a store without rebuilding it) never
writes into the other workdir's: a file is replaced by a new one, not written through its link."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO


def write(path: Path, text: str) -> None:
    """Replaces ``path`` whole: a reader sees the old text or the new, never a part, and a hard link is
    broken (the name points at a new file) instead of written through."""
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover could itself be a link into another workdir
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def open_new(path: Path) -> TextIO:
    """A log opened on a new file: truncating in place would empty the linked one of another workdir."""
    path.unlink(missing_ok=True)
    return open(path, "w")
