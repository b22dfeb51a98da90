"""Strict reading of query parameters: an unknown name or a bad value is a 400, never a guess."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from werkzeug.datastructures import MultiDict

from archive.errors import InvalidQueryError
from archive.times import parse_day, parse_time

from .context import api
from .errors import ApiError, bad_parameter
from .signing import SignatureError

MAX_INTEGER = 2**63 - 1  # what the databases' integer columns hold
# Far enough apart for any archive, and far from datetime's limits that arithmetic on a time would overflow.
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)
_BETWEEN = f"must be between {EARLIEST.year} and {LATEST.year}"


def refuse_unknown(names: Iterable[str], accepted: Iterable[str]) -> None:
    """A 400 ``unknown_parameter`` naming the first of ``names`` not ``accepted`` (query parameters, a JSON body's
    fields): a misspelt name would otherwise be ignored in silence."""
    accepted = set(accepted)
    unknown = sorted(set(names) - accepted)
    if unknown:
        listed = ", ".join(sorted(accepted)) or "none"
        raise ApiError(400, "unknown_parameter", f"unknown parameter {unknown[0]!r} (accepted: {listed})")


def request_time(name: str, value: str) -> datetime:
    """A time a request gives (API or page): ISO 8601 or -7d, between EARLIEST and LATEST, else a 400 naming it."""
    try:
        moment = parse_time(value)
    except InvalidQueryError as e:
        raise bad_parameter(name, f"{e}{_plus_hint(value)}") from None
    except OverflowError:  # past datetime's years either way (-99999999d, 9999-12-31T23:59-05:00)
        moment = LATEST
    if not EARLIEST <= moment < LATEST:
        raise bad_parameter(name, _BETWEEN)
    return moment


def request_day(name: str, value: str) -> tuple[datetime, datetime]:
    """The [start, end) UTC span of a day a request gives, between EARLIEST and LATEST, else a 400 naming it."""
    try:
        start, end = parse_day(value)
    except InvalidQueryError as e:
        raise bad_parameter(name, str(e)) from None
    except OverflowError:  # 9999-12-31 has no next day
        start = end = LATEST
    if not EARLIEST <= start < LATEST:
        raise bad_parameter(name, _BETWEEN)
    return start, end


def _plus_hint(value: str) -> str:
    # A query string's '+' is a space: an offset such as +01:00 typed into a URL arrives as ' 01:00'.
    return " (a '+' in a URL's query string reads as a space: write it as %2B, or give the time in UTC with Z)" if " " in value else ""


def checked_text(name: str, value: str, max_length: int) -> str:
    """A request's text value (a parameter, a field) if it is at most ``max_length`` characters and holds no NUL,
    else a 400 naming it. No archived name or text holds a NUL (XML cannot carry one), and PostgreSQL's text
    refuses it: a nick=%00 was a driver error there, answered 503 "temporarily unavailable", where SQLite found
    nothing."""
    if len(value) > max_length:
        raise bad_parameter(name, f"longer than {max_length} characters")
    if "\x00" in value:
        raise bad_parameter(name, "holds a NUL character")
    return value


class Params:
    """The query parameters of one request, checked against the names an endpoint accepts."""

    def __init__(self, args: MultiDict, accepted: Iterable[str]):
        refuse_unknown(args, accepted)
        for name in args:
            if len(args.getlist(name)) > 1:
                raise bad_parameter(name, "given more than once")
        # A plain dict (each name once, as checked): werkzeug's get raises and catches an
        # exception for every absent name, and most of an endpoint's names are absent.
        self.args = args.to_dict()

    def text(self, name: str, *, required: bool = False, max_length: int = 4096) -> str | None:
        value = self.args.get(name)
        if value is None or value == "":
            if required:
                raise bad_parameter(name, "is required")
            return None
        return checked_text(name, value, max_length)

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.text(name) or default
        if value not in options:
            raise bad_parameter(name, f"must be one of {', '.join(options)}, not {value!r}")
        return value

    def integer(self, name: str, default: int | None, *, minimum: int = 0, maximum: int | None = None) -> int | None:
        value = self.text(name, max_length=20)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise bad_parameter(name, f"{value!r} is not a whole number") from None
        maximum = MAX_INTEGER if maximum is None else maximum
        if not minimum <= number <= maximum:
            raise bad_parameter(name, f"must be between {minimum} and {maximum}")
        return number

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.text(name, max_length=5)
        if value is None:
            return default
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise bad_parameter(name, f"must be true or false, not {value!r}")

    def time(self, name: str) -> datetime | None:
        value = self.text(name, max_length=64)
        return None if value is None else request_time(name, value)

    def day(self, name: str) -> tuple[datetime, datetime] | None:
        value = self.text(name, max_length=10)
        return None if value is None else request_day(name, value)

    def time_range(self, start: str = "from", end: str = "to") -> tuple[datetime | None, datetime | None]:
        lo, hi = self.time(start), self.time(end)
        if lo is not None and hi is not None and hi <= lo:
            raise bad_parameter(end, f"must be later than {start}")
        return lo, hi

    def cursor(self, kind: str, name: str = "cursor") -> dict | None:
        value = self.text(name, max_length=MAX_CURSOR_CHARS)
        return None if value is None else decode_cursor(value, kind, name)


MAX_CURSOR_CHARS = 4096
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


JSON_TYPES = ("application/json",)


def refuse_body_types(request, accepted: tuple[str, ...], wanted: str) -> None:
    """One rule for a POST's body: one of a kind the endpoint does not take is a 415 saying what it takes
    (``wanted``), whichever endpoint; read as if absent or as the wrong kind, it would run the request on defaults,
    or answer a 400 that names a parameter the caller did send."""
    if request.mimetype not in accepted and (request.content_length or "Transfer-Encoding" in request.headers):
        sent = request.mimetype or "a body without a type"
        raise ApiError(415, "unsupported_media_type", f"send {wanted}, not {sent}")


def form_parameters(request) -> MultiDict:
    """A POST's query and form parameters. A body of another kind (JSON) is refused: read as no parameters,
    it would run the request on defaults (an export of every room rather than the one it named)."""
    refuse_body_types(request, FORM_TYPES, f"the parameters in the query string or as a form ({FORM_TYPES[0]})")
    return request.values


def json_body(request, wanted: str):
    """A POST's JSON body (None if it has none or it does not parse); a body of another kind is refused."""
    refuse_body_types(request, JSON_TYPES, f"{wanted} as {JSON_TYPES[0]}")
    try:
        return request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser's stack ("[" * 2000): silent swallows ValueError only
        return None


def line_ref(value: str | None, name: str = "around") -> str | None:
    """A transcript line named by its position or a message id (``around``, the API's and the room page's): a
    number past the databases' integers is no line, and it overflowed in one store's driver (a 400 there, a
    404 in the other)."""
    if value is None:
        return None
    checked_text(name, value, 256)
    if value.isdecimal() and int(value) > MAX_INTEGER:
        raise bad_parameter(name, "is not a line position or message id")
    return value


def encode_cursor(state, kind: str) -> str:
    """An opaque cursor: the state needed to resume a list of ``kind`` (rooms, presence,
    transcript, search, ...), signed so that only what this server issued comes back."""
    return api().signer.sign(state, f"{kind} cursor")


def decode_cursor(text: str, kind: str, name: str = "cursor"):
    """The state of a cursor ``encode_cursor`` made for ``kind``; 400 for anything else.
    What it holds is still the caller's to bounds-check."""
    if len(text) > MAX_CURSOR_CHARS:
        raise bad_parameter(name, f"longer than {MAX_CURSOR_CHARS} characters")
    try:
        return api().signer.verify(text, f"{kind} cursor")
    except SignatureError as e:
        raise bad_parameter(name, str(e)) from None
