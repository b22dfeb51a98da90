"""Which commands may make an archive where there is none: the one table. `./data/` is relative to where a command
runs, so from another directory any other command made an empty archive and answered from it (`token list` made
/tmp/data/events.sqlite; `token create` printed a token for no real archive; `export` then wrote "0 events")."""

from __future__ import annotations

import argparse

import pytest

from chat_archive.cli import build_parser
from tests.cli.test_events_commands import run_cli

# The processes that run a deployment, `import`, and `token create` (a deployment's first sign-in token is made
# before its first `up`: docs/DEPLOY.md), which says it made one.
MAY_CREATE = {"up", "listen", "project", "serve", "import", "token create"}
# Every other command, with the arguments it needs to get as far as the store.
MUST_FIND = {
    "audit": [], "events": ["lobby@conference.localhost"], "log": [], "export": ["-o", "x.zip"],
    "export-log": ["backup.gz"], "migrate": ["--to", "sqlite:///elsewhere/events.sqlite"], "rebuild": ["all"],
    "purge": ["--dry-run"], "search": ["hello"], "status": [], "transcript": ["lobby@conference.localhost"],
    "verify": [], "token list": [], "token revoke": ["abc"],
    "keys list": [], "keys rotate": [], "keys retire": ["abc"], "hold place": ["--case", "c1"],
    "hold release": ["abc"], "hold list": [],
}
NEEDS_NO_ARCHIVE = {"verify-export"}  # reads a bundle only


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    """Every command the parser takes, a group's actions as "group action"."""
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= commands(sub, f"{prefix}{name} ") or {f"{prefix}{name}"}
    return found


def test_every_command_is_in_the_table():
    assert commands(build_parser()) == MAY_CREATE | MUST_FIND.keys() | NEEDS_NO_ARCHIVE


@pytest.mark.parametrize("command", sorted(MUST_FIND))
def test_a_command_run_where_no_archive_is_makes_none(tmp_path, command):
    result = run_cli(*command.split(), *MUST_FIND[command], store_url="sqlite:///data/events.sqlite", cwd=tmp_path)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "no archive at data/events.sqlite" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "it made files where it ran"


def test_the_first_token_of_a_new_deployment_makes_its_archive_and_says_so(tmp_path):
    """docs/DEPLOY.md's first step, before the first `up`; said, so that one made from the wrong directory is seen."""
    result = run_cli("token", "create", "--role", "compliance", store_url="sqlite:///data/events.sqlite", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip().startswith("cat_"), (result.stdout, result.stderr)
    assert "made a new archive at data/events.sqlite" in result.stderr
    again = run_cli("token", "create", "--role", "compliance", store_url="sqlite:///data/events.sqlite", cwd=tmp_path)
    assert again.returncode == 0 and "made a new archive" not in again.stderr
