"""The compliance pages: the audit trail (who read what)."""

from __future__ import annotations

from flask import render_template, request

from archive.audit import read_audit
from archive.times import format_time

from .. import audit
from ..context import api
from ..params import Params
from ..roles import Capability
from .pages import bp, require

AUDIT_PAGE = 200


@bp.get("/audit")
def audit_page():
    require(Capability.AUDIT)
    params = Params(request.args, ("who", "since", "until", "after"))
    since, until = params.time_range("since", "until")
    after = params.integer("after", 0)
    records = []
    for recorded in read_audit(api().store, who=params.text("who"), since=since, until=until, after=after):
        records.append(recorded)
        if len(records) > AUDIT_PAGE:
            break
    more = len(records) > AUDIT_PAGE
    records = records[:AUDIT_PAGE]
    audit.results(len(records))
    return render_template(
        "web/audit.html",
        rows=[(r.position, format_time(r.event.occurred_at), r.event) for r in records],
        form={k: request.args.get(k, "") for k in ("who", "since", "until")},
        next_after=records[-1].position if more else None,
        format_time=format_time,
    )
