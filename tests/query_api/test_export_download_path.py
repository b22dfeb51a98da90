"""An export job's bundle is downloaded from where it was written, with the default relative `[api] export_dir`
(new-user walk, HIGH 1: every download answered 410 "expired" a minute after the job was done, because Flask
resolved the relative path against its own package directory); a bundle gone from a job that has not expired
is said to be gone, not to have expired."""

from __future__ import annotations

import time

from query_api.context import EXTENSION
from query_api.roles import Role
from query_api.tokens import open_token_store

from .conftest import LOBBY, auth, make_config
from .serving import start_serve
from .test_export_jobs import wait_done


def _app(private_seeded, export_dir: str):
    from query_api import create_app

    tokens = open_token_store(private_seeded.url, cache_seconds=0)
    app = create_app(make_config(private_seeded.url, export_dir=export_dir), store=private_seeded.store,
                     views=private_seeded.views, search=private_seeded.search, tokens=tokens)
    return app, tokens, auth(tokens.create(Role.COMPLIANCE)[0])


def test_a_relative_export_dir_is_the_working_directorys_and_its_bundles_download(private_seeded, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app, tokens, mine = _app(private_seeded, "data/exports")
    try:
        client = app.test_client()
        job = client.post(f"/api/v1/exports?format=eml&room={LOBBY}", headers=mine).json["id"]
        assert wait_done(client, f"/api/v1/exports/{job}", mine).json["state"] == "done"
        assert (tmp_path / "data" / "exports" / f"{job}.zip").is_file()
        whole = client.get(f"/api/v1/exports/{job}/download", headers=mine)
        assert whole.status_code == 200, whole.get_data(as_text=True)
        rest = client.get(f"/api/v1/exports/{job}/download", headers={**mine, "Range": "bytes=10-"})
        assert rest.status_code == 206 and rest.get_data() == whole.get_data()[10:]
    finally:
        app.extensions[EXTENSION].exports.close()
        tokens.close()


def test_a_bundle_gone_from_a_job_that_has_not_expired_is_said_to_be_gone_not_expired(private_seeded, tmp_path):
    app, tokens, mine = _app(private_seeded, str(tmp_path / "exports"))
    try:
        client = app.test_client()
        job = client.post(f"/api/v1/exports?format=jsonl&room={LOBBY}", headers=mine).json["id"]
        assert wait_done(client, f"/api/v1/exports/{job}", mine).json["state"] == "done"
        (tmp_path / "exports" / f"{job}.zip").unlink()  # an operator's clean-up, or a directory not shared
        gone = client.get(f"/api/v1/exports/{job}/download", headers=mine)
        assert gone.status_code == 410 and gone.json["error"]["code"] == "bundle_missing", gone.json
        message = gone.json["error"]["message"]
        assert "has not expired" in message and "missing from [api] export_dir" in message and "start the export again" in message
    finally:
        app.extensions[EXTENSION].exports.close()
        tokens.close()


def test_serve_from_a_fresh_directory_with_the_default_export_dir_serves_its_downloads(tmp_path):
    """The real path: `chat-archive serve` run in a directory of its own, `[api] export_dir` left at its default."""
    served = start_serve(tmp_path)
    try:
        status, _, body = served.request("POST", f"/api/v1/exports?format=eml&room={LOBBY}", token="compliance")
        assert status == 202, body
        job = __import__("json").loads(body)["id"]
        deadline = time.monotonic() + 30
        while served.request("GET", f"/api/v1/exports/{job}", token="compliance")[2].find(b'"running"') >= 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert (tmp_path / "data" / "exports" / f"{job}.zip").is_file()
        status, headers, whole = served.request("GET", f"/api/v1/exports/{job}/download", token="compliance")
        assert status == 200 and headers["Content-Type"] == "application/zip", whole[:300]
        status, _, rest = served.request("GET", f"/api/v1/exports/{job}/download", token="compliance",
                                         headers={"Range": "bytes=100-"})
        assert status == 206 and rest == whole[100:]
    finally:
        served.stop()
