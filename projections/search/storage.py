"""Where the index lives: generations of tantivy directories behind one symlink.

``<path>/current`` is a symlink to ``<path>/gen-NNNNNN``. A rebuild writes a new
generation beside the live one and swaps the link with one atomic rename, so a
reader sees either the whole old index or the whole new one. Readers notice the
swap on their next search (they compare the link's target) and reopen; the
generation just replaced is kept until the next swap so that a reader still
holding it keeps working, older ones are deleted.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from archive.errors import StoreError

_GENERATION = re.compile(r"^gen-(\d{6,})$")
LINK = "current"


class IndexLocation:
    def __init__(self, base: str | os.PathLike):
        self.base = Path(base)

    @property
    def link(self) -> Path:
        return self.base / LINK

    def current(self) -> Path | None:
        """The live generation's directory, or None before the first one exists."""
        try:
            return self.base / os.readlink(self.link)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"search index {self.link} is not a generation link: {e}") from e

    def current_or_new(self, init: Callable[[Path], None]) -> Path:
        """The live generation, creating a first one (see ``new_generation``) if there is none."""
        current = self.current()
        if current is None:
            current = self.new_generation(init)
            self.swap(current)
        return current

    def new_generation(self, init: Callable[[Path], None] | None = None) -> Path:
        """A fresh generation directory (not live until swapped in), made ready by ``init``
        (an empty index) before anyone else can see it."""
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            numbers = [int(m.group(1)) for m in map(_GENERATION.match, os.listdir(self.base)) if m]
            fresh = self.base / f"gen-{max(numbers, default=0) + 1:06d}"
            fresh.mkdir()
        except OSError as e:
            raise StoreError(f"cannot create a search index generation in {self.base}: {e}") from e
        if init is not None:
            init(fresh)
        return fresh

    def swap(self, fresh: Path) -> None:
        """Make ``fresh`` the live generation atomically; drop all but it and the one it replaces."""
        previous = self.current()
        temporary = self.base / f".{LINK}.{os.getpid()}"
        try:
            if temporary.is_symlink():
                temporary.unlink()
            os.symlink(fresh.name, temporary)
            os.replace(temporary, self.link)
        except OSError as e:
            raise StoreError(f"cannot switch the search index to {fresh}: {e}") from e
        self._drop_generations(keep={fresh.name, previous.name if previous else None})

    def drop_replaced(self) -> None:
        """Delete every generation but the live one now, not at the next swap: after a purge the
        replaced generation still holds what was purged. A reader that still has it open keeps its
        (unlinked) files until it follows the link on its next reload."""
        current = self.current()
        self._drop_generations(keep={current.name if current else None})

    def _drop_generations(self, keep: set[str | None]) -> None:
        for entry in os.listdir(self.base):
            if _GENERATION.match(entry) and entry not in keep:
                shutil.rmtree(self.base / entry, ignore_errors=True)
