"""A throwaway Prosody server on loopback, for tests and demo traffic.

The Debian ``prosody`` package is used as installed; only the config file, data
and log live in a directory of our own. The server runs in the foreground in a
new process session and is stopped by pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from archive.errors import ChatArchiveError

PROSODY = "prosody"
PROSODYCTL = "prosodyctl"


# XEP-0425 message moderation is not in Prosody 0.12 (only as a community module):
# this minimal version lets tests and the demo moderate. A moderator's request
# becomes a groupchat announcement from the room, archived like any message.
# With ``muc_moderation_tombstones`` it also does what the community module
# (mod_muc_moderation) and ejabberd do: the moderated message in the room's
# archive (mod_muc_mam's store) is replaced, in place and under its own id, by a
# tombstone naming the moderator and when (the archive API's ``set``).
MODERATION_MODULE = """
local st = require "util.stanza";
local dt = require "util.datetime";
local new_id = require "util.id".medium;
local jid_split = require "util.jid".split;
local mod_muc = module:depends("muc");
local NS_MODERATE, NS_RETRACT = "urn:xmpp:message-moderate:1", "urn:xmpp:message-retract:1";
local tombstones = module:get_option_boolean("muc_moderation_tombstones", false);
local archive = module:open_store("muc_log", "archive");

-- The archived message's tombstone, in place of it: false and an error condition if there is none to replace.
local function bury(room, stanza_id, actor, reason)
	local node = jid_split(room.jid);
	local original = archive:get(node, stanza_id);
	if not original then
		return false, "item-not-found";
	end
	local tombstone = st.message({ from = original.attr.from, type = "groupchat", id = original.attr.id })
		:tag("moderated", { xmlns = NS_MODERATE, by = actor })
			:tag("retracted", { xmlns = NS_RETRACT, stamp = dt.datetime() }):up();
	if reason then
		tombstone:text_tag("reason", reason);
	end
	tombstone:up();
	local occupant_id = original:get_child("occupant-id", "urn:xmpp:occupant-id:0");
	if occupant_id then
		tombstone:add_child(st.clone(occupant_id));
	end
	if not archive:set(node, stanza_id, tombstone) then
		return false, "internal-server-error";
	end
	return true;
end

module:hook("muc-disco#info", function (event)
	event.reply:tag("feature", { var = NS_MODERATE }):up();
end);

module:hook("iq-set/bare/" .. NS_MODERATE .. ":moderate", function (event)
	local stanza, origin = event.stanza, event.origin;
	local room = mod_muc.get_room_from_jid(stanza.attr.to);
	if not room then
		origin.send(st.error_reply(stanza, "cancel", "item-not-found"));
		return true;
	end
	local actor = room:get_occupant_jid(stanza.attr.from);
	if not actor or room:get_role(actor) ~= "moderator" then
		origin.send(st.error_reply(stanza, "auth", "forbidden"));
		return true;
	end
	local request = stanza:get_child("moderate", NS_MODERATE);
	local reason = request:get_child_text("reason");
	if tombstones then
		local buried, condition = bury(room, request.attr.id, actor, reason);
		if not buried then
			origin.send(st.error_reply(stanza, condition == "item-not-found" and "modify" or "wait", condition));
			return true;
		end
	end
	local announcement = st.message({ type = "groupchat", from = room.jid, id = new_id() })
		:tag("retract", { xmlns = NS_RETRACT, id = request.attr.id })
		:tag("moderated", { xmlns = NS_MODERATE, by = actor }):up();
	if reason then
		announcement:text_tag("reason", reason);
	end
	announcement:up():tag("store", { xmlns = "urn:xmpp:hints" }):up(); -- archived (MAM), with a stanza-id
	room:broadcast_message(announcement);
	origin.send(st.reply(stanza));
	return true;
end);
"""


class ProsodyError(ChatArchiveError):
    """The local Prosody server could not be started or driven."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ProsodyServer:
    """One Prosody instance: ``start()``, ``register()`` accounts, ``stop()``.

    ``admins`` are admins of the whole server (Prosody makes them owners of every
    room). ``muc_options`` are extra Lua assignments for the MUC component.
    """

    directory: Path
    domain: str = "localhost"
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)  # XMPP over WebSocket (RFC 7395), for the widget
    admins: tuple[str, ...] = ()
    muc_options: dict[str, str] = field(default_factory=dict)
    muc_modules: tuple[str, ...] = ()  # more modules of the MUC component (found in ``directory`` too)
    tls: bool = False  # require STARTTLS, with a self-signed certificate (``certificate``)
    plain_auth: bool = True  # offer SASL PLAIN on unencrypted connections (False: SCRAM only)
    entity_time: bool = True  # answer XEP-0202 time requests (mod_time), as the listener asks at connect
    moderation_tombstones: bool = False  # a moderated message's archived copy becomes a tombstone (MODERATION_MODULE)
    process: subprocess.Popen | None = None

    @property
    def muc_service(self) -> str:
        return f"conference.{self.domain}"

    @property
    def plain_muc_service(self) -> str:
        """A second MUC service without MAM (no archive, no stanza-ids from it)."""
        return f"chat.{self.domain}"

    @property
    def websocket_url(self) -> str:
        """Prosody's mod_websocket endpoint, where browsers (the widget) speak XMPP."""
        return f"ws://127.0.0.1:{self.http_port}/xmpp-websocket"

    @property
    def config_file(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    @property
    def certificate(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def log_file(self) -> Path:
        return self.directory / "prosody.log"

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(exist_ok=True)
        admins = ", ".join(f'"{a}"' for a in self.admins)
        muc = {
            "muc_log_all_rooms": "true",
            "muc_room_default_public": "true",
            "muc_room_default_persistent": "true",
            "max_archive_query_results": "100",
            **({"muc_moderation_tombstones": "true"} if self.moderation_tombstones else {}),
            **self.muc_options,
        }
        muc_lines = "\n".join(f"    {key} = {value}" for key, value in muc.items())
        enabled = [
            "roster", "saslauth", "disco", "ping", "posix", "websocket",
            *(["time"] if self.entity_time else []), *(["tls"] if self.tls else []),
        ]
        disabled = ["s2s", *([] if self.tls else ["tls"])]
        tls_lines = self._tls_config() if self.tls else "c2s_require_encryption = false"
        (self.directory / "mod_muc_moderation_lite.lua").write_text(MODERATION_MODULE, encoding="utf-8")
        self.config_file.write_text(
            f"""
run_as_root = true
plugin_paths = {{ "{self.directory}" }}
daemonize = false
pidfile = "{self.directory}/prosody.pid"
data_path = "{self.directory}/data"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{self.log_file}" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
http_ports = {{ {self.http_port} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{}}
admins = {{ {admins} }}
modules_enabled = {{ {", ".join(f'"{m}"' for m in enabled)} }}
modules_disabled = {{ {", ".join(f'"{m}"' for m in disabled)} }}
{tls_lines}
allow_unencrypted_plain_auth = {"true" if self.plain_auth else "false"}
authentication = "internal_hashed"
storage = "internal"
limits = {{ c2s = {{ rate = "10mb/s" }} }}

VirtualHost "{self.domain}"

Component "{self.muc_service}" "muc"
    modules_enabled = {{ {", ".join(f'"{m}"' for m in ("muc_mam", "muc_moderation_lite", *self.muc_modules))} }}
{muc_lines}

Component "{self.plain_muc_service}" "muc"
    muc_room_default_public = true
    muc_room_default_persistent = true
""",
            encoding="utf-8",
        )

    def _tls_config(self) -> str:
        key = self.directory / "key.pem"
        if not self.certificate.exists():
            result = subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7", "-subj", f"/CN={self.domain}",
                 "-addext", f"subjectAltName=DNS:{self.domain}", "-keyout", str(key), "-out", str(self.certificate)],
                capture_output=True, text=True, timeout=60,
            )
            if result.returncode != 0:
                raise ProsodyError(f"openssl could not make a certificate: {result.stderr}")
        return (
            f'c2s_require_encryption = true\nssl = {{ certificate = "{self.certificate}", key = "{key}" }}'
        )

    def register(self, user: str, password: str) -> str:
        """Create an account (works whether the server runs or not); return its JID."""
        if not self.config_file.exists():
            self.write_config()
        result = subprocess.run(
            [PROSODYCTL, "--config", str(self.config_file), "register", user, self.domain, password],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise ProsodyError(f"prosodyctl register {user} failed: {result.stderr or result.stdout}")
        return f"{user}@{self.domain}"

    def start(self, timeout: float = 15.0) -> None:
        if not self.config_file.exists():
            self.write_config()
        log = open(self.directory / "prosody.stdout", "ab")
        try:
            self.process = subprocess.Popen(
                [PROSODY, "--config", str(self.config_file), "-F"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as e:
            raise ProsodyError(f"cannot run {PROSODY} (install the Debian package 'prosody'): {e}") from e
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ProsodyError(f"prosody exited with {self.process.returncode}: {self.log_tail()}")
            try:
                for port in (self.port, self.http_port):
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise ProsodyError(f"prosody did not open port {self.port} within {timeout} s: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for name in ("prosody.log", "prosody.stdout"):
            path = self.directory / name
            if path.exists():
                parts += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(parts)
