"""The command line's audit records (``archive.audit``): who is the operating-system user running the command,
with the store's own access (role ``operator``).

``audit_cli_read`` records a read whose answer is known before any of it is printed (search, verify).
``audited_cli_read`` records a read that streams its answer (events, log, transcript, audit, export, export-log)
when it ends, however it ends, with what it had written out by then: output piped into ``head`` ends such a read
with BrokenPipeError, Ctrl-C with KeyboardInterrupt, both after content went out, and a record written only once
everything was out left no trace of those reads.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from archive.audit import record_read
from archive.store import EventStore


def audit_cli_read(store: EventStore, command: str, **what) -> None:
    """Record a read of archived content made from the command line."""
    record_read(store, via="cli", endpoint=command, role="operator", user=getpass.getuser(), **what)


@dataclass
class ReadTally:
    """What a streamed command-line read has written out so far: each result counted before it is written, as a
    write stopped by Ctrl-C may have sent it (unbuffered, the first line went out and its write raised)."""

    results: int = 0


@contextmanager
def audited_cli_read(store: EventStore, command: str, **what) -> Iterator[ReadTally]:
    """A streamed read, recorded when the block ends, whichever way, with the tally's count. A record that cannot
    be written is raised (chained to what ended the block, if anything did): no read ends unrecorded and silent."""
    tally = ReadTally()
    try:
        yield tally
    finally:
        audit_cli_read(store, command, results=tally.results, **what)
