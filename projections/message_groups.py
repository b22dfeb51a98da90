"""Which events of a room stand or fall together: a message's post and every correction and retraction that
means it, by the message model's rule (``projections.messages``), whether the model applied it or refused it.

A legal hold that covers one of them keeps them all, and one not yet expired keeps them all too
(``archive.retention.purge``, handed this rule by ``chat_archive``): a held message's later correction or
moderation says what readers were shown and who removed it, and a held correction or removal says what it changed
only beside its message; a correction kept without its expired message would await the next message reusing its
id, and the rebuilt views would show that one corrected. Kept whole, each of these
messages folds as it did before, whatever the purge deletes around it: every line a correction or retraction of
the group found or settled is in the group, so no other line can take its place (a refused one included: with
its message deleted, it would mean an older message with that id, or await the next). Other events (joins,
subjects) are never part of a message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from archive import events as ev
from archive.events import Recorded

from .memory_book import MemoryBook
from .messages import ids_of, meant, named, step


def message_groups(read: Callable[[], Iterable[Recorded]]) -> list[list[int]]:
    """The groups of more than one event among ``read()``'s (one room's, in log order), as log positions.

    ``read`` is called twice, streaming: first for the ids corrections and retractions name, then to fold the
    model over those and the posts carrying such an id. A post no correction or retraction names is a message
    of one event whose line nothing can find: no line of it is made, so memory grows with a room's corrections
    and retractions, not with its millions of posts. Where several messages carry an id, all are folded, so the
    model still means the one it means in the room (``messages.owns``)."""
    wanted = {ref for record in read() if (ref := named(record.event))}
    if not wanted:
        return []
    book, parent = MemoryBook(), {}
    for record in read():
        position, event = record.position, record.event
        ref = named(event)
        if ref is None and not (type(event) is ev.MessagePosted and not wanted.isdisjoint(ids_of(event))):
            continue
        target = None if ref is None else meant(event, book)
        changes = step(position, event, book)
        book.apply(changes)
        members = [line.id for line in changes.put] + changes.dropped + ([target.id] if target else [])
        for member in members:
            _join(parent, position, member)
        parent.setdefault(position, position)
    groups: dict[int, list[int]] = {}
    for member in parent:
        groups.setdefault(_root(parent, member), []).append(member)
    return [sorted(group) for group in groups.values() if len(group) > 1]


def _root(parent: dict[int, int], member: int) -> int:
    root = parent.setdefault(member, member)
    while parent[root] != root:
        root = parent[root]
    while parent[member] != root:  # path compression: chains of corrections stay short to walk
        parent[member], member = root, parent[member]
    return root


def _join(parent: dict[int, int], a: int, b: int) -> None:
    parent[_root(parent, a)] = _root(parent, b)
