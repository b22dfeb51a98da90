"""The compliance pages: the audit trail (who read what), and export jobs started from the room and
search pages with a progress page (it refreshes itself until the bundle is ready; no script needed)."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for

from archive.audit import audit_page as trail_page
from archive.events import AUDIT_STREAM
from archive.times import format_time

from .. import audit
from ..context import api
from ..params import Params
from ..exports.api import download, export_request, owned_job, start_job
from ..roles import Capability
from . import auth
from .pages import bp, require

AUDIT_PAGE = 200


@bp.get("/audit")
def audit_page():
    require(Capability.AUDIT)
    params = Params(request.args, ("who", "since", "until", "after", "trail"))
    since, until = params.time_range("since", "until")
    after = params.integer("after", 0)
    trail = audit.checked_trail(params)
    records, next_after = trail_page(api().store, who=params.text("who"), since=since, until=until, after=after,
                                     limit=AUDIT_PAGE, trail=trail)
    audit.results(len(records))
    return render_template(
        "web/audit.html",
        rows=[(r.position, format_time(r.event.occurred_at), r.event) for r in records],
        form={**{k: request.args.get(k, "") for k in ("who", "since", "until")}, "trail": trail},
        own=AUDIT_STREAM,
        copies=[t for t in api().store.audit_trails() if t != AUDIT_STREAM],
        next_after=next_after,
        after=after,
        format_time=format_time,
    )


@bp.post("/exports")
def export_start():
    auth.check_csrf()
    who = require(Capability.EXPORT)
    status = start_job(who, export_request(request.form, who))
    return redirect(url_for("web.export_page", job_id=status.id), 303)


@bp.get("/exports/<job_id>")
def export_page(job_id: str):
    status = owned_job(require(Capability.EXPORT), job_id)
    expires = api().exports.expires_at(status)
    return render_template("web/export.html", job=status, expires_at=format_time(expires) if expires else None)


@bp.get("/exports/<job_id>/download")
def export_download(job_id: str):
    return download(owned_job(require(Capability.EXPORT), job_id))
