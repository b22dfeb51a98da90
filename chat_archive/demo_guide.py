"""What `up --demo` tells a newcomer: how to sign in (a token it keeps and reuses) and which account
joins the widget; printed on the console and shown by the sign-in page and the widget. And where its
server is, for the commands a newcomer runs from another shell while it runs (`verify`)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import msgspec

from archive.application import StoreLocation
from archive.lease import process_alive
from archive.times import utcnow
from ingest.settings import XmppSettings
from query_api.roles import Role
from query_api.tokens import TokenStore

TOKEN_FILE = "demo-token"
SERVER_FILE = "demo-xmpp.json"
TOKEN_LIFETIME = timedelta(days=30)


def token_file(config) -> Path:
    """Where the demo keeps its sign-in token: beside a SQLite store, else in ./data."""
    return data_directory(config) / TOKEN_FILE


def data_directory(config) -> Path:
    location = StoreLocation.parse(config.store.url)
    return location.path.parent if location.kind == "sqlite" else Path("data")


class _RunningServer(msgspec.Struct):
    pid: int
    xmpp: XmppSettings


def publish_server(config, xmpp: XmppSettings) -> Path:
    """Record the running demo's server settings beside its token: its port and the listener's
    password are new on every run, so another shell could not reach it otherwise. Owner-only,
    like the token; ``running_server`` ignores it once this process has ended."""
    path = data_directory(config) / SERVER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(msgspec.json.encode(_RunningServer(pid=os.getpid(), xmpp=xmpp)))
    return path


def withdraw_server(config) -> None:
    """Remove the server file this process published, never another's (another `up` of this store running)."""
    path = data_directory(config) / SERVER_FILE
    try:
        published = msgspec.json.decode(path.read_bytes(), type=_RunningServer)
    except (OSError, msgspec.DecodeError):
        return
    if published.pid == os.getpid():
        path.unlink(missing_ok=True)


def running_server(config) -> XmppSettings | None:
    """The ``[xmpp]`` settings of the demo `up --demo` runs for this store now, if one does."""
    try:
        running = msgspec.json.decode((data_directory(config) / SERVER_FILE).read_bytes(), type=_RunningServer)
    except (OSError, msgspec.DecodeError):
        return None
    return running.xmpp if process_alive(running.pid) else None  # else left by a demo killed outright


def sign_in_token(tokens: TokenStore, path: Path) -> tuple[str, bool]:
    """The demo's compliance token: the one saved at ``path`` while it still works, else a new
    one that expires (so repeated demos do not pile up tokens that never do). Returns
    (token, reused)."""
    try:
        saved = path.read_text(encoding="ascii").strip()
    except OSError:
        saved = ""
    info = tokens.lookup(saved) if saved else None
    if info is not None and info.role is Role.COMPLIANCE:
        return saved, True
    retire_old_demo_tokens(tokens)
    token, _ = tokens.create(Role.COMPLIANCE, label="demo (up --demo)", expires_at=utcnow() + TOKEN_LIFETIME)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file left by an older run may have had another mode
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(token + "\n")
    return token, False


# Demos before tokens could expire made a new non-expiring compliance token, labelled so, on every run.
OLD_DEMO_LABEL = "demo"


def retire_old_demo_tokens(tokens: TokenStore) -> list[str]:
    """Revoke the never-expiring tokens earlier demos left, one per run; returns their ids."""
    old = [t.id for t in tokens.list() if t.label == OLD_DEMO_LABEL and not t.revoked_at and not t.expires_at]
    for token_id in old:
        tokens.revoke(token_id)
    return old


def demo_hints(config, guest: tuple[str, str]) -> dict:
    """What the sign-in page and the widget tell a newcomer (the app's ``config["DEMO"]``)."""
    jid, password = guest
    return {"token_file": str(token_file(config)), "guest_jid": jid, "guest_password": password}


def print_guide(tokens: TokenStore, config, url: str, hints: dict) -> None:
    """The console's part: the sign-in token (kept and reused), where to sign in, the widget's account."""
    token, reused = sign_in_token(tokens, token_file(config))
    print(f"chat-archive up: demo sign-in token (compliance role): {token}", flush=True)
    again = "the same as last time" if reused else "new, valid for 30 days"
    print(
        f"chat-archive up:   {again}; saved in {hints['token_file']}. Sign in at {url}/signin with it.\n"
        f"chat-archive up: to talk in a room, open it on the Rooms page, then its widget, and join as "
        f"{hints['guest_jid']} with password {hints['guest_password']}.\n"
        f"chat-archive up: stop with Ctrl-C.",
        flush=True,
    )
