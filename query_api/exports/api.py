"""Export jobs over HTTP (compliance): start one, follow its progress, download it (streamed, resumable).

``POST /api/v1/exports`` with ``format`` (rsmf, eml, jsonl, csv), ``room`` (JIDs,
comma-separated; default every room), ``from``, ``to`` and ``q`` as query or form
parameters answers 202 with the job's status; ``GET /api/v1/exports/{id}`` is its
progress; ``GET /api/v1/exports/{id}/download`` the ZIP, with HTTP range support so
that an interrupted download resumes where it stopped. A job is visible only to the
token that started it (anyone else gets the same 404 as for no job at all). A finished
job is kept ``[api] export_keep_days`` (its status says until when, ``expires_at``); then
both answer 410 ``expired`` for as long again, and after that 404 like any unknown job. A job not expired whose
bundle is missing (deleted by hand) answers 410 ``bundle_missing``, saying so.
"""

from __future__ import annotations

import logging
from datetime import datetime

import msgspec
from flask import Blueprint, Response, request, send_file

from archive.errors import NotFoundError
from archive.times import format_time, parse_time
from projections.search.query import parse

from .. import audit
from ..access import Caller
from ..context import api, caller, json_response, visible_room
from ..errors import ApiError
from ..params import Params, form_parameters
from ..roles import Capability
from .bundle import FORMATS, ExportRequest
from .jobs import JobStatus

bp = Blueprint("exports", __name__)
log = logging.getLogger(__name__)


def export_request(values, who: Caller) -> ExportRequest:
    """The export asked for by request parameters (the API's or the page's form), rooms checked."""
    params = Params(values, ("format", "room", "from", "to", "q", "csrf_token"))
    start, end = params.time_range()
    named = tuple(r.strip() for r in (params.text("room", max_length=65536) or "").split(",") if r.strip())
    query = params.text("q")
    audit.scope(named, query, start, end)  # given in a form body, as the page's form gives them
    rooms = tuple(visible_room(who, room) for room in named)
    if query is not None:
        # Checked now, as the streamed export does: a malformed query is this request's 400, not a job that
        # fails after its 202 (or, with a time out of range, a job whose thread died "running" for ever).
        parse(query)
    return ExportRequest(
        format=params.choice("format", FORMATS, "rsmf"), rooms=rooms, start=start, end=end, query=query,
    )


def start_job(who: Caller, export: ExportRequest) -> JobStatus:
    context = api()
    return context.exports.start(export, who.token_id, context.store, context.views, context.search)


def owned_job(who: Caller, job_id: str) -> JobStatus:
    """The caller's job; an expired one is an error (410) for its owner only, so nobody else learns it was."""
    status = api().exports.status(job_id)
    if status.owner != who.token_id:
        raise NotFoundError(f"no export {job_id!r}")
    if status.state == "expired":
        raise expired(status)
    return status


def expired(status: JobStatus) -> ApiError:
    jobs = api().exports
    when = jobs.expires_at(status)
    when_and_why = f" at {format_time(when)}, {jobs.keep_days:g} days after it finished" if when else ""
    return ApiError(410, "expired", f"the export expired{when_and_why} ([api] export_keep_days): its bundle was "
                                    "deleted; start the export again")


def bundle_gone(status: JobStatus) -> ApiError:
    """A done job's bundle not found: expired by another process since its status was read (its clock a little
    ahead), or deleted from under a job that has not expired, which is not to be called "expired"."""
    jobs = api().exports
    try:
        now = jobs.status(status.id)
    except NotFoundError:  # forgotten meanwhile: long expired
        now = msgspec.structs.replace(status, state="expired")
    if now.state == "expired":
        return expired(now)
    log.warning("export %s is %s but its bundle %s is missing", status.id, now.state, jobs.bundle_path(status.id))
    return ApiError(410, "bundle_missing", "the export has not expired but its bundle is missing from [api] export_dir "
                                           "(deleted there, or this server process reads another directory than the "
                                           "one it was written to): start the export again")


def status_answer(status: JobStatus) -> dict:
    """The job's status, with when its bundle will be deleted (from the current `[api] export_keep_days`)."""
    expires = api().exports.expires_at(status)
    return {**msgspec.structs.asdict(status), "expires_at": format_time(expires) if expires else None}


def download(status: JobStatus) -> Response:
    if status.state != "done":
        raise ApiError(409, "not_ready", f"the export is {status.state}" + (f": {status.error}" if status.error else ""))
    audit.results(status.events)
    asked = status.request
    audit.scope(tuple(asked.get("rooms") or ()), asked.get("query"), _moment(asked.get("start")), _moment(asked.get("end")))
    try:
        response = send_file(api().exports.bundle_path(status.id), mimetype="application/zip", as_attachment=True,
                             download_name=f"chat-archive-export-{status.id}.zip", conditional=True)
    except FileNotFoundError:
        raise bundle_gone(status) from None
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Manifest-SHA256"] = status.manifest_sha256 or ""
    return response


def _moment(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


@bp.post("/exports")
def create_export() -> Response:
    who = caller(Capability.EXPORT)
    status = start_job(who, export_request(form_parameters(request), who))
    return json_response(status_answer(status), 202)


@bp.get("/exports/<job_id>")
def export_status(job_id: str) -> Response:
    return json_response(status_answer(owned_job(caller(Capability.EXPORT), job_id)))


@bp.get("/exports/<job_id>/download")
def export_download(job_id: str) -> Response:
    return download(owned_job(caller(Capability.EXPORT), job_id))
