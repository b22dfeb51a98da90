"""Deterministic synthetic group chat, streamed as archive events.

``generate(spec)`` yields archive events one at a time (never the whole corpus
in memory): N rooms with Zipf-distributed activity, M users, bodies drawn from a
Zipf vocabulary per room language (English most, then German, French, Spanish,
Russian, Japanese, Chinese, Arabic), emoji, a few stock phrases (so phrase
queries have hits), and occupant churn in realistic proportions: joins, leaves
(some kicks), status changes, nick changes, corrections, retractions, subject
and role changes. The same seed and size always give the same events.

``write_ndjson`` / ``read_ndjson`` stream a corpus to and from a file (one JSON
event per line), for runs that want the corpus on disk. ``from_irc_log`` makes
a real IRC-style log the corpus instead (parsed by ``ingest.irc_log``).

Stanza-ids are random 16-character strings, as Prosody issues them (so the
store's idempotency-key index gets no locality from them).
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import functools
import hashlib
import itertools
import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import msgspec

from archive import events as ev
from archive.codec import from_json, to_json
from archive.events import ArchiveEvent
from ingest.irc_log import parse_irc_log

from .measure import batched

SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
MUC = "conference.example.org"

_EN_COMMON = (
    "the to and a i you it of is that in for this on we have be not with are but so just do can was what "
    "if at my me all it's like get there no about yes one they out will up from think now know good then "
    "or your how more time would need see also here work well some when any only going thanks use make "
    "right still go an got did should could want today new fix build test code release server "
    "room message issue change branch merge deploy check try look sure ok yeah maybe because really "
    "people again back first last week tomorrow morning meeting review config error log bug patch "
    "version update docs question answer idea problem works broken client login data file"
).split()
_LANGS = {
    "de": "und der die das ist nicht ich du wir sie es ein eine mit auf für heute morgen gut danke ja nein "
    "vielleicht schon noch aber oder wenn weil Fehler Server Nachricht Raum Zeit Woche bitte genau "
    "später können müssen sollten Besprechung Änderung Übersicht Größe",
    "fr": "le la les et est pas je tu nous vous il elle un une avec sur pour aujourd'hui demain bien merci "
    "oui non peut-être déjà encore mais ou quand parce erreur serveur message salon temps semaine "
    "s'il vous plaît réunion changement très être été où",
    "es": "el la los las y es no yo tú nosotros ellos un una con en para hoy mañana bien gracias sí "
    "quizás ya todavía pero o cuando porque error servidor mensaje sala tiempo semana reunión "
    "cambio también está niño año",
    "ru": "и в не на я что он с это как а по но вы мы они да нет спасибо сегодня завтра хорошо "
    "ошибка сервер сообщение комната время неделя встреча изменение может уже ещё когда потому",
    "ja": "こんにちは ありがとう はい いいえ 今日 明日 サーバー エラー メッセージ 部屋 時間 会議 確認 "
    "お願いします 了解 すみません 大丈夫 変更 テスト リリース",
    "zh": "你好 谢谢 是 不是 今天 明天 服务器 错误 消息 房间 时间 会议 确认 请 好的 没问题 修改 "
    "测试 发布 可以 我们 他们",
    "ar": "مرحبا شكرا نعم لا اليوم غدا خادم خطأ رسالة غرفة وقت اجتماع تغيير ممكن بالفعل لكن عندما لأن",
}
_LANG_SHARES = [("en", 70), ("de", 8), ("fr", 6), ("es", 5), ("ru", 4), ("ja", 3), ("zh", 2), ("ar", 2)]
_EMOJI = "👍 😂 🎉 ❤️ 🙏 🔥 👀 ✅ ❌ 🚀 😅 🤔 😊 💯 🙂 😢 ☕ 🐛".split()
PHRASES = ("pull request", "release notes", "build is green", "works on my machine", "merge conflict")
_SYLLABLES = "ka ri to mo na be lu shi ven dor pra quel zin tas gor mil fen ux yo bra cle dre fli".split()
_STATUS = ("in a meeting", "lunch", "working from home", "on call", "back soon", "🌴 holiday", "busy")
_SHOWS = ("away", "dnd", "xa", "chat", None)


@dataclass(frozen=True)
class CorpusSpec:
    """Shape of a corpus; ``for_size`` picks realistic room and user counts."""

    events: int
    rooms: int
    users: int
    seed: int = 42
    vocabulary: int = 50_000
    irc_log: str | None = None  # a real IRC-style log instead of synthetic chat (see from_irc_log)
    irc_room: str = f"irc@{MUC}"
    irc_start: str = "2024-01-01"
    cache: str | None = None  # a directory: the first whole pass keeps the events there, later passes read them

    @classmethod
    def for_size(cls, size: str | int, seed: int = 42) -> CorpusSpec:
        n = SIZES[size] if isinstance(size, str) else size
        rooms = 10 if n <= 10_000 else 50 if n <= 100_000 else 100 if n <= 1_000_000 else 200
        return cls(events=n, rooms=rooms, users=rooms * 10, seed=seed)


def room_jid(index: int) -> str:
    return f"room{index:04d}@{MUC}"


class _Zipf:
    """Draws items with probability proportional to 1 / rank ** s."""

    def __init__(self, items: list, s: float, rng: random.Random):
        self.items = items
        self.cum = list(itertools.accumulate(1.0 / (rank**s) for rank in range(1, len(items) + 1)))
        self.rng = rng

    def draw(self, k: int = 1) -> list:
        return self.rng.choices(self.items, cum_weights=self.cum, k=k)

    def one(self):
        return self.items[bisect.bisect(self.cum, self.rng.random() * self.cum[-1])]


@functools.lru_cache(maxsize=4)
def english_vocabulary(size: int, seed: int) -> list[str]:
    """Common English words first, then deterministic pseudo-words (the rare tail)."""
    rng = random.Random(seed ^ 0x5EED)
    words = list(dict.fromkeys(_EN_COMMON))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class _Room:
    def __init__(self, jid: str, lang: str):
        self.jid = jid
        self.lang = lang
        self.present: dict[str, int] = {}  # nick -> user index
        self.recent: deque[tuple[str, str, str]] = deque(maxlen=20)  # (nick, message_id, stanza_id)


class _Generator:
    def __init__(self, spec: CorpusSpec):
        self.spec = spec
        self.rng = random.Random(spec.seed)
        rng = self.rng
        langs, shares = zip(*_LANG_SHARES)
        self.rooms = [_Room(room_jid(i), rng.choices(langs, weights=shares)[0]) for i in range(spec.rooms)]
        self.rooms[0].lang = "en"
        self.room_activity = _Zipf(list(range(spec.rooms)), 1.0, rng)
        self.vocab = {"en": _Zipf(list(english_vocabulary(spec.vocabulary, spec.seed)), 1.07, rng)}
        for lang, text in _LANGS.items():
            self.vocab[lang] = _Zipf(text.split(), 1.0, rng)
        self.nicks = [f"user{i}" for i in range(spec.users)]
        self.user_activity = _Zipf(list(range(spec.users)), 0.8, rng)
        self.t = START
        # (kind, weight per 1,000 events) once rooms have occupants
        self.kinds, self.kind_cum = zip(*_accumulate(
            [("message", 880), ("join", 35), ("leave", 33), ("presence", 25), ("correct", 15),
             ("nick", 4), ("retract", 4), ("kick", 1), ("role", 2), ("subject", 1)]
        ))

    def events(self) -> Iterator[ev.Event]:
        emitted = 0
        for room in self.rooms:
            yield ev.RoomDiscovered(
                room=room.jid, occurred_at=self.t, recorded_at=self.t, name=room.jid.split("@")[0]
            )
            emitted += 1
            if emitted >= self.spec.events:
                return
        while emitted < self.spec.events:
            self.t += timedelta(seconds=self.rng.expovariate(1 / 3.0))
            room = self.rooms[self.room_activity.one()]
            event = self._next(room)
            if event is not None:
                yield event
                emitted += 1

    def _next(self, room: _Room) -> ev.Event | None:
        rng = self.rng
        kind = "join" if len(room.present) < 3 else self.kinds[bisect.bisect(self.kind_cum, rng.random() * 1000)]
        common = {"room": room.jid, "occurred_at": self.t, "recorded_at": self.t + timedelta(milliseconds=3)}
        if kind == "join":
            user = self.user_activity.one()
            nick = self.nicks[user]
            if nick in room.present:
                return None
            room.present[nick] = user
            return ev.OccupantJoined(
                **common, nick=nick, jid=f"{nick}@example.org/chat", role="participant",
                affiliation="member" if user % 3 == 0 else "none", occupant_id=f"occ{user}",
            )
        nick = rng.choice(list(room.present)) if len(room.present) < 64 else self._speaker(room)
        user = room.present[nick]
        if kind == "message":
            return self._message(room, nick, user, common)
        if kind in ("leave", "kick"):
            del room.present[nick]
            if kind == "kick":
                return ev.OccupantLeft(**common, nick=nick, reason=ev.LeaveReason.KICKED,
                                       actor="user0", reason_text="please stay on topic", occupant_id=f"occ{user}")
            return ev.OccupantLeft(**common, nick=nick, occupant_id=f"occ{user}")
        if kind == "presence":
            return ev.PresenceChanged(**common, nick=nick, show=rng.choice(_SHOWS), status=rng.choice(_STATUS),
                                      occupant_id=f"occ{user}")
        if kind == "nick":
            new = f"{self.nicks[user]}_{rng.randint(1, 99)}"
            if new in room.present:
                return None
            del room.present[nick]
            room.present[new] = user
            return ev.NickChanged(**common, old_nick=nick, new_nick=new, occupant_id=f"occ{user}")
        if kind == "role":
            return ev.RoleChanged(**common, nick=nick, role=rng.choice(("moderator", "visitor", "participant")),
                                  actor="user0", occupant_id=f"occ{user}")
        if kind == "subject":
            return ev.SubjectChanged(**common, nick=nick, subject=self._body(room, 6))
        if not room.recent:
            return self._message(room, nick, user, common)
        target_nick, message_id, stanza_id = room.recent[-1 - rng.randrange(len(room.recent))]
        if kind == "correct":
            return ev.MessageCorrected(**common, nick=target_nick, replaces_id=message_id,
                                       body=self._body(room, rng.randint(2, 20)), stanza_id=self._id(),
                                       message_id=self._id())
        moderated = rng.random() < 0.3
        return ev.MessageRetracted(**common, target_id=stanza_id, moderated=moderated,
                                   by_nick="user0" if moderated else target_nick, stanza_id=self._id())

    def _speaker(self, room: _Room) -> str:
        for _ in range(8):
            nick = self.nicks[self.user_activity.one()]
            if nick in room.present:
                return nick
        return next(iter(room.present))

    def _id(self) -> str:
        # Like Prosody's util.id.medium: 12 random bytes, base64url (random, so no index locality).
        return base64.urlsafe_b64encode(self.rng.getrandbits(96).to_bytes(12, "big")).decode()

    def _message(self, room: _Room, nick: str, user: int, common: dict) -> ev.Event:
        stanza_id, message_id = self._id(), self._id()
        room.recent.append((nick, message_id, stanza_id))
        return ev.MessagePosted(
            **common, nick=nick, body=self._body(room, _word_count(self.rng)), stanza_id=stanza_id,
            message_id=message_id, occupant_id=f"occ{user}", jid=f"{self.nicks[user]}@example.org/chat",
        )

    def _body(self, room: _Room, n: int) -> str:
        rng = self.rng
        words = self.vocab[room.lang].draw(n)
        if room.lang != "en" and rng.random() < 0.3:
            words += self.vocab["en"].draw(2)
        r = rng.random()
        if r < 0.04:
            words.insert(rng.randrange(len(words) + 1), rng.choice(PHRASES))
        elif r < 0.16:
            words.append(rng.choice(_EMOJI))
        sep = "" if room.lang in ("ja", "zh") and rng.random() < 0.5 else " "
        return sep.join(words)


def _accumulate(pairs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    total = 0
    out = []
    for kind, weight in pairs:
        total += weight
        out.append((kind, total))
    return out


def _word_count(rng: random.Random) -> int:
    # Mostly short lines, a long tail of paragraphs: mean about 13 words.
    return 1 + min(int(rng.expovariate(1 / 12.0)), 120)


def generate(spec: CorpusSpec) -> Iterator[ev.Event]:
    """The corpus, one event at a time (from ``spec.cache`` when an earlier whole pass kept it there)."""
    if spec.irc_log:
        return _irc_events(spec)
    if spec.cache:
        return _cached(spec)
    return _Generator(spec).events()


_CHUNK = 10_000
_chunk_decoder = msgspec.msgpack.Decoder(list[ArchiveEvent])


def cache_file(spec: CorpusSpec) -> Path:
    """Named by the spec and by what would make a kept corpus wrong: the event schema and this generator."""
    made_by = hashlib.sha256(msgspec.json.encode(msgspec.json.schema(ArchiveEvent)) + Path(__file__).read_bytes())
    return Path(spec.cache) / (f"corpus-{spec.events}-{spec.rooms}-{spec.users}-{spec.seed}-{spec.vocabulary}-"
                               f"{made_by.hexdigest()[:12]}.msgpack")


def _cached(spec: CorpusSpec) -> Iterator[ev.Event]:
    """Generating costs more than reading msgpack (at 10M: about two minutes against seconds), and a
    run passes over its corpus several times (each store, the index from the stream): the first whole
    pass writes length-prefixed chunks beside its consumer, and the file counts only once complete."""
    path = cache_file(spec)
    if path.exists():
        with open(path, "rb") as f:
            while header := f.read(4):
                yield from _chunk_decoder.decode(f.read(int.from_bytes(header, "big")))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob("corpus-*.msgpack"):  # another seed, schema or generator: gigabytes at 10M
        stale.unlink()
    partial = path.with_suffix(".partial")
    encoder = msgspec.msgpack.Encoder()
    with open(partial, "wb") as f:
        for chunk in batched(_Generator(spec).events(), _CHUNK):
            data = encoder.encode(chunk)
            f.write(len(data).to_bytes(4, "big") + data)
            yield from chunk
    partial.rename(path)  # only reached when the consumer took every event


def from_irc_log(path: str, room: str = f"irc@{MUC}", start: str = "2024-01-01") -> CorpusSpec:
    """A spec whose events are those of an IRC-style log (ingest.irc_log), counted in one streamed pass."""
    spec = CorpusSpec(events=0, rooms=1, users=0, irc_log=path, irc_room=room, irc_start=start)
    n = sum(1 for _ in _irc_events(spec))
    return dataclasses.replace(spec, events=n)


def _irc_events(spec: CorpusSpec) -> Iterator[ev.Event]:
    with open(spec.irc_log, encoding="utf-8", errors="replace") as f:
        yield from parse_irc_log(f, spec.irc_room, date.fromisoformat(spec.irc_start), recorded_at=START)


def write_ndjson(events: Iterable[ev.Event], path: Path) -> int:
    """Stream events to ``path`` as JSON lines; returns how many were written."""
    n = 0
    with open(path, "wb") as f:
        for event in events:
            f.write(to_json(event))
            f.write(b"\n")
            n += 1
    return n


def read_ndjson(path: Path) -> Iterator[ev.Event]:
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield from_json(line)


@dataclass(frozen=True)
class QuerySet:
    """Search queries by class, drawn from the corpus's own vocabulary."""

    classes: dict[str, list[str]]
    room: str


def query_set(spec: CorpusSpec, per_class: int = 20) -> QuerySet:
    """Queries for each class: common word, two words AND, rare word, phrase, room filter + word.

    Common words are ranks 20-60 of the English vocabulary (past the stop-word head),
    rare words ranks 15,000-25,000 (a few to a few dozen hits at 1M events).
    """
    rng = random.Random(spec.seed + 1)
    vocab = english_vocabulary(spec.vocabulary, spec.seed)
    common = [w for w in vocab[20:60] if "'" not in w]
    rare = vocab[15_000:25_000]
    pick = lambda pool: [rng.choice(pool) for _ in range(per_class)]  # noqa: E731
    return QuerySet(
        classes={
            "common word": pick(common),
            "two words AND": [f"{a} {b}" for a, b in zip(pick(common), pick(common))],
            "rare word": pick(rare),
            "phrase": [f'"{p}"' for p in (PHRASES * per_class)[:per_class]],
            "room filter + word": pick(common),
        },
        room=room_jid(0),
    )
