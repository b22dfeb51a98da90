"""The ``refs`` rows of a commit's new lines, as each store writes them (``transcripts.refs.created_ref_rows``)."""

from __future__ import annotations

from array import array
from datetime import datetime, timezone
import tracemalloc

import pytest

from projections import viewdb_backends
from projections.lines import Line
from projections.owned import OwnedIds
from archive import events as ev
from projections.columns import Columns
from projections.transcripts.refs import (BUCKET_BITS, INSERT_REFS, MAX_CANDIDATES, REFS, _ref_keys, all_ref_rows,
                                         created_ref_rows, ref_hash, ref_ids, ref_key)
from projections.viewdb_backends import COPY_FROM
from tests.factories import make, message
from tests.projections.test_transcripts import project

AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _message(line_id: int, *ids: str, **fields) -> Line:
    stanza_id, origin_id = (ids + (None, None))[:2]
    return Line(id=line_id, room="r@muc", at=AT, kind="message", nick="a", body="hi", stanza_id=stanza_id,
                origin_id=origin_id, **fields)


# Lines of a commit, in log order: ids in several buckets, a line not a message first (it starts the id
# span all the same), one known by more ids than its own (a correction applied), and one whose hash has the
# top bit set (a 32-bit number the JSON path must not take for negative).
HIGH = next(f"s{n}" for n in range(100) if ref_hash("r@muc", f"s{n}") >= 2**31)
LINES = [
    Line(id=2**BUCKET_BITS - 2, room="r@muc", at=AT, kind="joined", nick="a"),
    _message(2**BUCKET_BITS - 1, "a1", "o1"),
    _message(2**BUCKET_BITS, HIGH),
    _message(3 * 2**BUCKET_BITS + 5, "a3", "o3", message_id="m3", aliases=["c3"]),
]


@pytest.mark.parametrize(
    "lines",
    [LINES, [*LINES, _message(LINES[0].id + 2**31, "far")]],  # ids 2**31 apart: a key would not fit 63 bits
    ids=["one commit", "ids 2**31 apart"],
)
def test_the_refs_of_new_lines_are_their_rows(views, lines):
    """Whichever way the store takes them (one JSON array on SQLite), the rows are ``all_ref_rows``'s."""
    recorder = views.recorder
    generation = recorder.create_generation("transcripts", [REFS], live=False, rules=1)
    recorder.commit_batch("transcripts", generation, lines[-1].id, created_ref_rows(lines, recorder.json_each),
                          building=True)
    rows = recorder.read_rows(recorder.sql("SELECT ref_key, id FROM {refs}", "transcripts", generation))
    expected = sorted(all_ref_rows(lines))
    assert sorted((row["ref_key"], row["id"]) for row in rows) == expected
    assert len(expected) == 7 + (len(lines) > len(LINES))  # 2 + 1 + 4 ids (+ the far line's)
    recorder.drop_building("transcripts", generation)


def test_the_binary_copy_of_integer_rows_is_made_in_one_buffer():
    """``_binary_int8_rows`` (tested against PostgreSQL below) fills one buffer in place: made as header + rows
    + trailer, it held three copies of the rows at once."""
    count = 100_000
    columns = [array("q", range(count)) for _ in range(3)]
    tracemalloc.start()
    try:
        data = viewdb_backends._binary_int8_rows(columns)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(data) == 19 + 38 * count + 2 and data.endswith(b"\xff\xff")
    assert peak < 2 * len(data), f"{peak / len(data):.2f} times the buffer at its peak"


def test_refs_as_a_writer_process_gets_them_are_written_as_they_are(views, monkeypatch):
    """A rebuild's writer process gets integer columns as ``array("q")`` (``projections.writer``); enough rows
    for COPY, which PostgreSQL takes as one binary buffer made from the arrays (``_binary_int8_rows``): the rows
    read back are the rows given, numbers at both ends of 64 bits included."""
    recorder = views.recorder
    generation = recorder.create_generation("transcripts", [REFS], live=False, rules=1)
    count = 2 * COPY_FROM
    columns = [array("q", [(-1) ** i * (2**63 - 1 - i) for i in range(count)]),
               array("q", [i * 2**32 + 255 - i for i in range(count)])]
    made, binary = [], viewdb_backends._binary_int8_rows
    monkeypatch.setattr(viewdb_backends, "_binary_int8_rows", lambda cols: made.append(1) or binary(cols))
    recorder.commit_batch("transcripts", generation, 1, [(INSERT_REFS, Columns(*columns))], building=True)
    rows = recorder.read_rows(recorder.sql("SELECT ref_key, id FROM {refs}", "transcripts", generation))
    assert sorted((row["ref_key"], row["id"]) for row in rows) == sorted(zip(*columns))
    assert made == ([1] if recorder.placeholder == "%s" else [])  # PostgreSQL's way was the one tested
    recorder.drop_building("transcripts", generation)


def test_a_lines_refs_are_the_ids_it_is_known_by():
    """``all_ref_rows`` (and the keys SQLite's rows come from) hash a line's own ids without ``lines.ids``'
    call: the same ids, each once, as that rule names them, for ids repeated, missing or gained."""
    shapes = [("s", "o", "m"), ("s", "s", "m"), ("s", "o", "s"), ("s", "o", "o"), ("s", None, "s"), (None, "o", "o"),
              (None, None, "m"), ("s", None, None), (None, None, None)]
    lines = [_message(n, *shape[:2], message_id=shape[2]) for n, shape in enumerate(shapes, start=1)]
    lines += [_message(20, "s", "o", aliases=("c", "s")), _message(21, "s", awaiting="w"),
              Line(id=22, room="r@muc", at=AT, kind="joined", nick="a")]
    expected = [(ref_key(line.id, ref_hash(line.room, ref)), line.id) for line in lines for ref in ref_ids(line)]
    assert list(all_ref_rows(lines)) == expected
    first = 5  # some lines below it: their offsets are negative
    keys = [(first + (key >> 32), key & 0xFFFFFFFF) for key in _ref_keys(lines, first)]
    assert [(ref_key(line_id, ref), line_id) for line_id, ref in keys] == expected


def test_a_ref_key_is_the_line_ids_bucket_above_the_hash():
    """One number for (bucket, hash): ordered by bucket first, as the key was, and within 63 bits for any 32-bit
    hash of a line id below 2**47."""
    assert ref_key(3 * 2**BUCKET_BITS + 5, 7) == 3 << 32 | 7
    assert ref_key(2**BUCKET_BITS - 1, 2**32 - 1) < ref_key(2**BUCKET_BITS, 0)
    assert ref_key(2**47 - 1, 2**32 - 1) < 2**63


def colliding(room: str, ref: str, prefix: str) -> str:
    """An id of ``prefix`` and 40 letters whose ``ref_hash`` is ``ref``'s: crc32 is linear over GF(2), so which
    letters to flip (a for c) is a linear system. Any occupant can choose its messages' ids so."""
    letters = 40
    base = bytearray(prefix.encode() + b"a" * letters)
    start, want = ref_hash(room, base.decode()), ref_hash(room, ref)

    def flipped(i: int) -> int:
        one = bytearray(base)
        one[len(prefix) + i] ^= 2
        return ref_hash(room, one.decode()) ^ start

    basis: list[tuple[int, int]] = []  # (hash difference, letters flipped), reduced
    for i in range(letters):
        vector, flips = flipped(i), 1 << i
        for known, known_flips in basis:
            if vector ^ known < vector:
                vector, flips = vector ^ known, flips ^ known_flips
        if vector:
            basis.append((vector, flips))
            basis.sort(reverse=True)
    rest, flips = start ^ want, 0
    for known, known_flips in basis:
        if rest ^ known < rest:
            rest, flips = rest ^ known, flips ^ known_flips
    assert rest == 0
    forged = bytearray(base)
    for i in range(letters):
        if flips >> i & 1:
            forged[len(prefix) + i] ^= 2
    return forged.decode()


def test_ids_chosen_to_collide_with_a_messages_id_do_not_hide_it_from_a_moderator(event_store, views):
    """``select_by_ref`` looked at the 8 newest lines sharing the id's hash and gave up: eight posts with ids
    chosen to collide kept a moderation (and the author's own corrections) from the message."""
    room = "lobby@conference.localhost"
    project(event_store, views, [message(1, "abuse", nick="mallory", stanza_id="room-sid-1")])
    decoys = [colliding(room, "room-sid-1", f"d{k}-") for k in range(MAX_CANDIDATES + 1)]
    assert {ref_hash(room, d) for d in decoys} == {ref_hash(room, "room-sid-1")}
    project(event_store, views, [message(2 + k, "x", nick="mallory", stanza_id=d) for k, d in enumerate(decoys)])
    project(event_store, views, [make(ev.MessageRetracted, 20, target_id="room-sid-1", moderated=True, by_nick="mod")])
    [abuse] = [line for line in views.transcripts.page(room, limit=100, include_originals=True).lines if line.body == "abuse"]
    assert abuse.removed is not None and abuse.removed.by_nick == "mod"



def test_past_the_stanza_ids_it_keeps_a_rebuild_asks_the_view_whether_a_forgotten_line_owns_an_id(monkeypatch):
    """``OwnedIds`` answers "no forgotten line owns it" from memory only while it holds every forgotten
    stanza-id; past its bound it keeps none and answers nothing, so the book asks the view (as for a view not
    built from empty in this process)."""
    monkeypatch.setattr("projections.owned.MOST", 2)
    owned = OwnedIds(complete=True)
    owned.forgot({"r@muc": {"s1": 1, "s2": 2}})
    assert (owned.none_own("r@muc", "s1"), owned.none_own("r@muc", "s9")) == (False, True)
    owned.forgot({"r@muc": {"s3": 3}})
    assert not owned.complete and not owned.none_own("r@muc", "s9") and not owned._forgotten
