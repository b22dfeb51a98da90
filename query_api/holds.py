"""Legal holds over HTTP (compliance): list, place (``case``, ``room``, ``jid``, ``from``, ``to``), release.

Holds are events of the archive's compliance stream (``archive.retention``): placing or
releasing one is recorded with the token that did it.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from archive.retention import holds_of, place_hold, release_hold

from .context import api, caller, json_response
from .params import Params, form_parameters
from .roles import Capability

bp = Blueprint("holds", __name__)


def _by(who) -> str:
    return f"token {who.token_id}" + (f" for {who.user}" if who.user else "")


def _list(values) -> tuple[str, ...]:
    return tuple(v.strip() for v in (values or "").split(",") if v.strip())


@bp.get("/holds")
def holds() -> Response:
    caller(Capability.AUDIT, "list legal holds")
    Params(request.args, ())
    return json_response({"holds": holds_of(api().store)})


@bp.post("/holds")
def place() -> Response:
    who = caller(Capability.AUDIT, "place legal holds")
    params = Params(form_parameters(request), ("case", "room", "jid", "from", "to"))
    start, end = params.time_range()
    hold = place_hold(api().store, case=params.text("case", required=True, max_length=500),
                      rooms=_list(params.text("room", max_length=65536)), jids=_list(params.text("jid", max_length=65536)),
                      start=start, end=end, by=_by(who))
    return json_response(hold, 201)


@bp.post("/holds/<hold_id>/release")
def release(hold_id: str) -> Response:
    who = caller(Capability.AUDIT, "release legal holds")
    params = Params(form_parameters(request), ("reason",))
    return json_response(release_hold(api().store, hold_id, by=_by(who), reason=params.text("reason", max_length=2000) or ""))
