"""Every error the API answers with, as JSON: `{"error": {"code": ..., "message": ...}}`.

This is the one place where archive errors become HTTP statuses. Nothing is
ever answered with a stack trace: an unexpected exception is logged here and
answered as a plain 500 body in the same shape.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from archive.errors import ChatArchiveError, InvalidQueryError, NotFoundError, StoreError
from projections.search import IndexUnusable

from .escaping import log_safe

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success, raised anywhere in a request."""

    def __init__(self, status: int, code: str, message: str, *, position: int | None = None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.position = position
        self.headers = headers or {}


def bad_parameter(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", f"{name}: {message}")


def room_not_found(room: str) -> ApiError:
    # The same answer whether the room does not exist or the caller may not see it; the hint depends on what was
    # sent alone (the CLI takes a bare name, `lobby`, where the API takes only JIDs).
    hint = "" if "@" in room else ": a room is named by its JID here (name@service)"
    return ApiError(404, "not_found", f"no room {room!r}{hint}")


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="chat-archive"'})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def from_archive_error(error: ChatArchiveError) -> ApiError:
    """The HTTP answer for an archive error (the only such mapping in the project)."""
    if isinstance(error, InvalidQueryError):
        return ApiError(400, "invalid_query", str(error), position=error.position)
    if isinstance(error, NotFoundError):
        return ApiError(404, "not_found", str(error))
    if isinstance(error, IndexUnusable):
        return ApiError(503, "search_index_unusable", "search is unavailable until the search index is rebuilt (`up` "
                        "rebuilds an index of an earlier schema in the background)", headers={"Retry-After": "30"})
    if isinstance(error, StoreError):
        log.warning("store unavailable: %s", log_safe(error, 1000))
        return ApiError(503, "unavailable", "the archive is temporarily unavailable, try again", headers={"Retry-After": "5"})
    log.error("unexpected archive error: %s", log_safe(error, 1000))
    return ApiError(500, "internal", "internal error")


def error_document(error: ApiError) -> dict:
    """The JSON document every error is answered with."""
    body: dict = {"code": error.code, "message": error.message}
    if error.position is not None:
        body["position"] = error.position
    return {"error": body}


def error_response(error: ApiError):
    response = jsonify(error_document(error))
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def http_error(status: int, message: str) -> ApiError:
    """A refusal at the HTTP level (werkzeug's, or the server's before the app is called) as an ApiError."""
    return ApiError(status, _HTTP_CODES.get(status, "http_error"), message)


def out_of_range() -> ApiError:
    """An OverflowError below us: a time or number far out of range (on:9999-12-31, after:-99999999w, a line id of
    23 digits) overflowed in date arithmetic or a database's integer; bad input, not our failure."""
    return ApiError(400, "out_of_range", "a time or number in the request is out of range")


def install_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(OverflowError, lambda e: error_response(out_of_range()))
    app.register_error_handler(ChatArchiveError, lambda e: error_response(from_archive_error(e)))

    @app.errorhandler(HTTPException)
    def answer_http_exception(e: HTTPException):
        status = e.code or 500
        response = error_response(http_error(status, e.description or e.name))
        if status == 405 and e.get_response().headers.get("Allow"):
            response.headers["Allow"] = e.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        log.error("unhandled error in %s %s", request.method, log_safe(request.path), exc_info=e)
        return error_response(ApiError(500, "internal", "internal error"))
