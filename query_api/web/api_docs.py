"""The API's documentation page: Swagger UI over ``/api/v1/openapi.json``.

The viewer is Swagger UI 5 (it reads OpenAPI 3.1) as the ``flask-swagger-ui``
package ships it, served from this app (no CDN: the page works on a closed
network and under the pages' strict Content-Security-Policy). Only the bundle's
script, stylesheet and icons are served (not the package's blueprint, whose page
starts the viewer with an inline script), and a script file of ours starts it.
"""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, abort, render_template, send_from_directory, url_for

from .pages import who_is_signed_in

bp = Blueprint("api_docs", __name__)
bp.context_processor(who_is_signed_in)  # the page header says who is signed in, as on every page

VIEWER = files("flask_swagger_ui") / "dist"
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-16x16.png", "favicon-32x32.png"})


@bp.get("/docs/api")
def page():
    return render_template("web/api_docs.html", spec=url_for("openapi.openapi_json"))


@bp.get("/docs/api/assets/<name>")
def asset(name: str):
    if name not in ASSETS:
        abort(404)
    return send_from_directory(str(VIEWER), name, max_age=86400)
