"""Export jobs over HTTP (compliance): start one, follow its progress, download it (streamed, resumable).

``POST /api/v1/exports`` with ``format`` (rsmf, eml, jsonl, csv), ``room`` (JIDs,
comma-separated; default every room), ``from``, ``to`` and ``q`` as query or form
parameters answers 202 with the job's status; ``GET /api/v1/exports/{id}`` is its
progress; ``GET /api/v1/exports/{id}/download`` the ZIP, with HTTP range support so
that an interrupted download resumes where it stopped. A job is visible only to the
token that started it (anyone else gets the same 404 as for no job at all).
"""

from __future__ import annotations

from flask import Blueprint, Response, request, send_file

from archive.errors import NotFoundError

from .. import audit
from ..access import Caller
from ..context import api, caller, json_response, visible_room
from ..errors import ApiError
from ..params import Params
from ..roles import Capability
from .bundle import FORMATS, ExportRequest
from .jobs import JobStatus

bp = Blueprint("exports", __name__)


def export_request(values, who: Caller) -> ExportRequest:
    """The export asked for by request parameters (the API's or the page's form), rooms checked."""
    params = Params(values, ("format", "room", "from", "to", "q", "csrf_token"))
    start, end = params.time_range()
    rooms = tuple(r.strip() for r in (params.text("room", max_length=65536) or "").split(",") if r.strip())
    for room in rooms:
        visible_room(who, room)
    return ExportRequest(
        format=params.choice("format", FORMATS, "rsmf"), rooms=rooms, start=start, end=end, query=params.text("q"),
    )


def start_job(who: Caller, export: ExportRequest) -> JobStatus:
    context = api()
    return context.exports.start(export, who.token_id, context.store, context.views, context.search)


def owned_job(who: Caller, job_id: str) -> JobStatus:
    status = api().exports.status(job_id)
    if status.owner != who.token_id:
        raise NotFoundError(f"no export {job_id!r}")
    return status


def download(status: JobStatus) -> Response:
    if status.state != "done":
        raise ApiError(409, "not_ready", f"the export is {status.state}" + (f": {status.error}" if status.error else ""))
    audit.results(status.events)
    response = send_file(api().exports.bundle_path(status.id), mimetype="application/zip", as_attachment=True,
                         download_name=f"chat-archive-export-{status.id}.zip", conditional=True)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Manifest-SHA256"] = status.manifest_sha256 or ""
    return response


@bp.post("/exports")
def create_export() -> Response:
    who = caller(Capability.EXPORT)
    status = start_job(who, export_request(request.values, who))
    return json_response(status, 202)


@bp.get("/exports/<job_id>")
def export_status(job_id: str) -> Response:
    return json_response(owned_job(caller(Capability.EXPORT), job_id))


@bp.get("/exports/<job_id>/download")
def export_download(job_id: str) -> Response:
    return download(owned_job(caller(Capability.EXPORT), job_id))
