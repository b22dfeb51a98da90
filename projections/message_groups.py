"""Which events of a room stand or fall together: a message's post and the corrections and retractions the
message model applied to it (``projections.messages``: ``applies``, and what awaited it that ``step`` settled
into it), as the transcript view and the search index fold them.

A legal hold that covers one of them keeps them all, and one not yet expired keeps them all too
(``archive.retention.purge``, handed this rule by ``chat_archive``): a held message's later correction or
moderation says what readers were shown and who removed it, and a held correction or removal says what it changed
only beside its message; a correction kept without its expired message would await the next message reusing its
id, and the rebuilt views would show that one corrected. Kept whole, each of these messages folds as it did
before, whatever the purge deletes around it.

What the model refused is no part of the message: a correction by somebody else (a line of its own, with its own
group: it expires by its own age), a retraction not the author's (it changes nothing), a removal waiting past a
line not its to take (``removes``: a line of its own until the message the room gave the id comes). Grouped with
the message it names, anyone in a room kept any message from ever being purged, by correcting or retracting it
once a year. Kept after that message expired, such an event names a message the archive no longer holds, as if it
had never been archived: it awaits one, or means another line carrying the id, which it changes only if that
line is its own author's (the model applies nothing else of it). A removal the model accepted for a message
removed already (a second moderation) is in the message's group: kept alone, it would remove the next message
reusing the id. Other events (joins, subjects) are never part of a message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from archive import events as ev
from archive.events import Recorded

from .memory_book import MemoryBook
from .messages import applies, ids_of, meant, named, step


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
        parent.setdefault(position, position)
        if target is not None and applies(target, event):
            _join(parent, position, target.id)
        # What awaited the line this event made or changed (a post's, a correction's own, or the message it
        # corrected, which it joined above) and was taken into it; not the lines of others' corrections that
        # stop awaiting it (``put``: lines of their own) nor the retractions it refused.
        for member in changes.dropped:
            if member not in changes.refused:
                _join(parent, position, member)
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
