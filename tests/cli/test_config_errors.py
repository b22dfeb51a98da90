"""Bad settings stop a command at once with one line and exit status 2, never a traceback, another
port or a server that never answers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("settings", "complaint"), [
    ("[api]\nport = 99999\n", "port"),
    ("[api]\nport = -1\n", "port"),
    ("[api]\nthreads = 0\n", "threads"),
    ("[api]\nactive_requests = -1\n", "active_requests"),
    ("[api]\nfollow_heartbeat = 0\n", "follow_heartbeat"),
    ("[api]\nsigning_keys = [\"short\"]\n", "signing_keys"),
    ('[store]\nurl = "sqlite:////proc/no/such/dir/events.sqlite"\n', "cannot create the directory"),
    ('[store]\nurl = "sqlite:///{tmp}"\n', "is a directory"),
])  # fmt: skip
def test_bad_settings_are_one_line_and_exit_2(tmp_path, settings, complaint):
    config = tmp_path / "chat-archive.toml"
    config.write_text(settings.format(tmp=tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "chat_archive.cli", "--config", str(config), "serve"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert complaint in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "listening" not in result.stdout


@pytest.mark.parametrize("settings", [
    "[retention]\ndefault_days = 1000000000\n",
    '[retention.rooms]\n"lobby@conference.localhost" = 1000000000\n',
])  # fmt: skip
def test_a_retention_period_past_the_calendar_is_refused_when_read(tmp_path, settings):
    """A purge's cutoff is now minus the period: a period of a billion days overflowed the date arithmetic
    (OverflowError) once a room had events, and passed unnoticed until then."""
    config = tmp_path / "chat-archive.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/events.sqlite"\n' + settings)
    result = subprocess.run(
        [sys.executable, "-m", "chat_archive.cli", "--config", str(config), "purge", "--dry-run"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "$.retention" in result.stderr and "36500" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_store_that_cannot_be_reached_is_one_line_and_exit_1(tmp_path):
    """The README's one-line message: the driver's own went on in a second, tab-indented line ("Is the server
    running on that host...")."""
    result = subprocess.run(
        [sys.executable, "-m", "chat_archive.cli", "log"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "CHAT_ARCHIVE_STORE_URL": "postgresql://postgres@127.0.0.1:1/postgres?schema=nowhere"},
    )  # fmt: skip
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "cannot reach PostgreSQL at 127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(("settings", "environ", "complaint"), [
    ("[api]\nbogus = 1\n", {}, "[api] bogus"),
    ("[xmpp]\nbogus = 1\n", {}, "[xmpp] bogus"),
    ("[retention]\nbogus = 1\n", {}, "[retention] bogus"),
    ("[bogus]\nx = 1\n", {}, "[bogus]"),
    ('[api]\ntime_zone = "Mars/Base"\n', {}, "Mars/Base"),
    ('[api]\npublic_rooms = ["lobby"]\n', {}, "'lobby'"),
    ("", {"CHAT_ARCHIVE_API_TIME_ZONE": "Mars/Base"}, "environment variable CHAT_ARCHIVE_API_TIME_ZONE"),
])  # fmt: skip
def test_a_setting_refused_with_no_field_path_is_one_line_naming_where_it_came_from(tmp_path, settings, environ, complaint):
    """An error msgspec gives without a field's path (an unknown key or section, a section's own check) went through
    ``None in os.environ``: a traceback ending "TypeError: str expected, not NoneType", exit 1. The real process's
    environment, as a newcomer's shell has it: a mapping given to ``load_config`` hid it."""
    config = tmp_path / "chat-archive.toml"
    config.write_text(settings)
    result = subprocess.run(
        [sys.executable, "-m", "chat_archive.cli", "--config", str(config), "status"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env={**os.environ, **environ},
    )  # fmt: skip
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert complaint in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    where = "environment variable" if environ else str(config)
    assert where in result.stderr, result.stderr
