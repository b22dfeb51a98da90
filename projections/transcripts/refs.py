"""The transcript view's ``refs`` table: every id a message line is known by, for the message model's
look-ups and ``line(room, ref)``.

``refs`` is keyed by (ref_key, id): ``ref_key`` is (bucket << 32) | hash (``ref_key``), where ``bucket`` is the
line id's block of ``2**BUCKET_BITS`` log positions and ``hash`` stands for (room, id text) (``ref_hash``). The
ids are random, but the bucket gives the key insert locality: new lines go into the newest bucket, whose pages
stay cached, instead of one random leaf of a tree as large as the archive per id. A look-up probes the newest
buckets, then all older ones (``select_by_ref``; an older line may own the id: ``messages.owns``). One integer, not a bucket and a hash: sorting the rows by the key (PostgreSQL builds it
at a build's end) compares one number where the bucket, the same for ~118k rows, was nearly always a tie, and
the server compared the next column by a function call (1.8M refs of 1M events, the key's build alone: 1.43-1.90
-> 0.79-0.99 s of the server's CPU).
"""

from __future__ import annotations

import zlib

import msgspec

from ..lines import Line, from_stored, ids
from ..columns import Columns, Statements
from ..messages import owned as owned_by, owns

REFS = ("CREATE TABLE IF NOT EXISTS {refs} (ref_key INTEGER NOT NULL, id INTEGER NOT NULL, "
        "PRIMARY KEY (ref_key, id)) WITHOUT ROWID")

# Where the recorder says so (``keys_after_building``: PostgreSQL), a build fills ``refs`` unkeyed and keys
# them at its end, or before it first looks them up or deletes from them (``TranscriptProjection._key_refs``).
# Kept up row by row, the key cost the server 3.9-4.9 s CPU to COPY a 1M-event build's 1.8M refs, against
# 0.4 s into the plain table (the writer's backend, interleaved A/B at load 5-7), and building it afterwards
# 0.9-1.1 s (the same number of rows, alone). PostgreSQL keeps a table beside a primary key anyway: a unique
# index over the plain table is the same layout.
REFS_UNKEYED = "CREATE TABLE IF NOT EXISTS {refs} (ref_key INTEGER NOT NULL, id INTEGER NOT NULL)"
REFS_KEY = "CREATE UNIQUE INDEX IF NOT EXISTS [refs_key] ON {refs} (ref_key, id)"
INSERT_REFS = "INSERT INTO {refs} (ref_key, id) VALUES (?,?)"

BUCKET_BITS = 16
RECENT_BUCKETS = 2  # probed first, alone
MAX_CANDIDATES = 8  # lines sharing a ref hash read at a time (by chance, collisions are ~never)
# Where the recorder reads rows from a JSON array (``json_each``: SQLite), the refs of the lines a commit created
# go in one statement, one integer a ref: (line id - the commit's first line id) << 32 | hash, made into the row
# by SQLite (``ref_key``'s rule; its operators of bits all bind alike, so each is in brackets). executemany's
# binding of the numbers of each row was a tenth of a rebuild's writer process (1.8M refs of a 1M-event build;
# 200k events by callgrind: writer 11.52G -> 10.21G instructions, main process the same).
INSERT_REFS_FROM_JSON = (f"INSERT INTO {{refs}} (ref_key, id) SELECT (((? + (value >> 32)) >> {BUCKET_BITS}) << 32) "
                         f"| (value & {0xFFFFFFFF}), ? + (value >> 32) FROM json_each(?)")


def ref_hash(room: str, ref: str) -> int:
    """32 bits standing for (room, ref) in ``refs``: integers index at a fraction of the cost
    of the id texts. Matches are checked against the line, so a collision cannot mislead,
    and within one bucket they are rare."""
    return _crc32(ref.encode(), _room_seed(room))


def ref_key(line_id: int, hashed: int) -> int:
    """The key of a ``refs`` row: the line id's bucket above its ref's hash (32 bits). Within 63 bits while line
    ids (log positions) are below 2**47."""
    return (line_id >> BUCKET_BITS) << 32 | hashed


def _room_seed(room: str) -> int:
    seed = _ROOM_SEEDS.get(room)
    if seed is None:
        # crc32 continues from a running value: ref_hash is the crc of "<room> <ref>".
        seed = _ROOM_SEEDS[room] = _crc32(f"{room} ".encode())
    return seed


_ROOM_SEEDS: dict[str, int] = {}
_crc32 = zlib.crc32


def select_by_ref(query, room: str, ref: str, owned: bool = False) -> list[Line]:
    """The message lines of ``room`` known by ``ref``, those the room gave it first, each kind newest first
    (``messages.owns``); only those if ``owned``. The newest buckets, then all older ones in one statement: an
    owner there outranks a line of the newest carrying ``ref`` as a client id."""
    top = query("SELECT MAX(id) AS top FROM {lines}")[0]["top"]
    if top is None:
        return []
    newest, hashed = top >> BUCKET_BITS, ref_hash(room, ref)
    found: list[Line] = []
    for first, last in ((newest, newest - RECENT_BUCKETS), (newest - RECENT_BUCKETS, -1)):
        if first <= last:
            continue
        # Literal keys, one a bucket (integers we computed): each is one seek into the key.
        keys = ",".join(str(ref_key(bucket << BUCKET_BITS, hashed)) for bucket in range(first, last, -1))
        below = ""
        while True:
            rows = query(
                f"SELECT l.id, l.fields FROM {{refs}} r JOIN {{lines}} l ON l.id=r.id WHERE r.ref_key IN ({keys}) "
                f"{below}ORDER BY r.id DESC LIMIT {MAX_CANDIDATES}"
            )
            found += [line for line in map(from_stored, (bytes(row["fields"]) for row in rows))
                      if line.room == room and ref in ids(line) and (not owned or owned_by(line, ref))]
            # A full page: more lines sharing the hash (ids can be chosen to share it, crc32 is linear) may be
            # behind it, an owner among them.
            if len(rows) < MAX_CANDIDATES:
                break
            below = f"AND r.id < {rows[-1]['id']} "
    return sorted(found, key=lambda line: owns(line, ref), reverse=True)



def ref_ids(line: Line) -> list[str]:
    """The ids ``refs`` holds for a line: a message line's (``lines.ids``), none for the others."""
    return ids(line) if line.kind == "message" else []



def created_ref_rows(lines: list[Line], json_each: bool) -> Statements:
    """The statement inserting the ``refs`` rows of ``lines`` (a commit's new lines, in log order), with its rows:
    from a JSON array where the recorder can (``json_each``) and the lines' ids span less than 2**31 (a key
    fits 63 bits), else ``all_ref_rows``."""
    if not (json_each and lines and lines[-1].id - lines[0].id < 2**31):
        return [(INSERT_REFS, all_ref_rows(lines))]
    first = lines[0].id
    return [(INSERT_REFS_FROM_JSON, [(first, first, msgspec.json.encode(_ref_keys(lines, first)).decode())])]


def _ref_keys(lines: list[Line], first: int) -> list[int]:
    """One integer for each ``refs`` row of ``lines``: (line id - ``first``) << 32 | its ref's hash, in one loop
    (built from columns, the keys cost the rebuilding process 2.5% more instructions, callgrind, 200k events).
    Python's integers make any line's offset fit, below ``first`` too: ``all_ref_rows`` splits them back."""
    keys: list[int] = []
    append, seeds = keys.append, _ROOM_SEEDS
    for line in lines:
        if line.kind == "message":
            room = line.room
            seed = seeds.get(room)  # not ``_room_seed`` called for each line: 3.6% fewer instructions here
            if seed is None:
                seed = _room_seed(room)
            offset = (line.id - first) << 32
            if line.aliases or line.awaiting:
                for ref in ids(line):
                    append(offset | _crc32(ref.encode(), seed))
                continue
            # ``lines.ids`` of a line known by its own ids only (nearly every line), without the call and the
            # list it makes: each of them once, in its order.
            stanza_id, origin_id, message_id = line.stanza_id, line.origin_id, line.message_id
            if stanza_id:
                append(offset | _crc32(stanza_id.encode(), seed))
            if origin_id and origin_id != stanza_id:
                append(offset | _crc32(origin_id.encode(), seed))
            # ``origin_id is None`` first: a text compared with None is two failed comparisons (nearly every
            # line has no origin-id; 6% fewer instructions here, callgrind).
            if message_id and message_id != stanza_id and (origin_id is None or message_id != origin_id):
                append(offset | _crc32(message_id.encode(), seed))
    return keys


def all_ref_rows(lines: list[Line]) -> Columns:
    """The ``refs`` rows of ``lines`` (``ref_ids`` of each), in one loop, column by column: a rebuild
    runs it for every line, and a call or two per line was a third of the cost. Each key as ``ref_key`` makes it,
    its line's bucket shifted once a line."""
    keys: list[int] = []
    line_ids: list[int] = []
    add_key, add_id, seeds = keys.append, line_ids.append, _ROOM_SEEDS
    for line in lines:
        if line.kind != "message":
            continue
        line_id, room = line.id, line.room
        seed = seeds.get(room)
        if seed is None:
            seed = _room_seed(room)
        high = (line_id >> BUCKET_BITS) << 32
        if line.aliases or line.awaiting:
            for ref in ids(line):
                add_key(high | _crc32(ref.encode(), seed))
                add_id(line_id)
            continue
        stanza_id, origin_id, message_id = line.stanza_id, line.origin_id, line.message_id  # as ``_ref_keys``
        if stanza_id:
            add_key(high | _crc32(stanza_id.encode(), seed))
            add_id(line_id)
        if origin_id and origin_id != stanza_id:
            add_key(high | _crc32(origin_id.encode(), seed))
            add_id(line_id)
        if message_id and message_id != stanza_id and (origin_id is None or message_id != origin_id):
            add_key(high | _crc32(message_id.encode(), seed))
            add_id(line_id)
    return Columns(keys, line_ids)


def ref_rows(line: Line, refs: list[str]) -> list[tuple[int, int]]:
    if not refs:
        return []
    line_id, seed = line.id, _room_seed(line.room)
    return [(ref_key(line_id, _crc32(ref.encode(), seed)), line_id) for ref in refs]
