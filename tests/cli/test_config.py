"""Configuration: TOML file, environment overrides, validation, and the README's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archive.errors import ConfigError
from chat_archive.config import Config, load_config, settings_table, with_absolute_paths

README = Path(__file__).resolve().parents[2] / "README.md"


def test_with_no_file_and_no_environment_everything_lives_under_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    # The path settings made absolute against the working directory once, here (a relative one handed on was
    # resolved by Flask against its package directory: no export could be downloaded).
    data = tmp_path / "data"
    assert (config.index.path, config.api.export_dir, config.xmpp.status_file) == (
        str(data / "index"), str(data / "exports"), str(data / "listener-status.json"))
    assert config == with_absolute_paths(Config(), tmp_path)
    assert config.store.url == "sqlite:///data/events.sqlite"
    assert config.projections.commit_interval == 60.0


def test_an_absolute_path_setting_stays_as_written_and_an_empty_one_empty(tmp_path):
    config = load_config(environ={"CHAT_ARCHIVE_INDEX_PATH": "/srv/index", "CHAT_ARCHIVE_XMPP_STATUS_FILE": ""})
    assert (config.index.path, config.xmpp.status_file) == ("/srv/index", "")


def test_the_file_in_the_working_directory_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "chat-archive.toml").write_text('[api]\nport = 9000\n[xmpp]\nmuc_services = ["conference.example.org"]\n')
    config = load_config(environ={})
    assert config.api.port == 9000
    assert config.xmpp.muc_services == ("conference.example.org",)


def test_environment_overrides_the_file(tmp_path):
    file = tmp_path / "c.toml"
    file.write_text('[store]\nurl = "sqlite:///a.sqlite"\n[api]\nport = 9000\n')
    config = load_config(
        file,
        environ={
            "CHAT_ARCHIVE_STORE_URL": "postgresql://postgres@127.0.0.1/postgres",
            "CHAT_ARCHIVE_API_PORT": "9100",
            "CHAT_ARCHIVE_XMPP_EXCLUDE": "secret*@conference.example.org, hr@conference.example.org",
            "CHAT_ARCHIVE_XMPP_IMPORT_ARCHIVE": "false",
            "PATH": "/usr/bin",
        },
    )
    assert config.store.url.startswith("postgresql://")
    assert config.api.port == 9100
    assert config.xmpp.exclude == ("secret*@conference.example.org", "hr@conference.example.org")
    assert config.xmpp.import_archive is False


@pytest.mark.parametrize(
    "toml, environ, complaint",
    [
        ("[api]\nport = 'eighty'\n", {}, r"\$\.api\.port"),
        ("[api]\nprot = 80\n", {}, "prot"),
        ("[nonsense]\nx = 1\n", {}, "nonsense"),
        ("[api\n", {}, "not valid TOML"),
        ("", {"CHAT_ARCHIVE_API_PROT": "80"}, "CHAT_ARCHIVE_API_PROT names no setting"),
        ("", {"CHAT_ARCHIVE_PROJECTIONS_COMMIT_INTERVAL": "soon"}, "commit_interval"),
        ("[index]\nwriter_heap_mb = 5000\n", {}, r"writer_heap_mb"),  # tantivy: under 4 GB for its one thread
        # a public room's grant that can match no room opened nothing, silently (the token rule: tokens.grant_glob)
        ("[api]\npublic_rooms = ['lobby']\n", {}, r"public_rooms.*'lobby'"),
        ("", {"CHAT_ARCHIVE_API_PUBLIC_ROOMS": "glob:team-*"}, r"public_rooms.*'glob:team-\*'"),
    ],
)
def test_bad_configuration_is_a_clear_error(tmp_path, toml, environ, complaint):
    file = tmp_path / "c.toml"
    file.write_text(toml)
    with pytest.raises(ConfigError, match=complaint):
        load_config(file, environ=environ)


def test_a_named_config_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", environ={})


def test_every_setting_has_a_meaning():
    for setting, _, _, meaning in settings_table():
        assert meaning, f"{setting} has no docstring in its settings Struct"


def test_the_readme_settings_table_matches_the_code():
    rows = re.findall(r"^\| `(\[\w+\] \w+)` \| `(CHAT_ARCHIVE_\w+)` \| `(.*?)` \|", README.read_text(), re.M)
    documented = {setting: (env, default) for setting, env, default in rows}
    in_code = {setting: (env, default) for setting, env, default, _ in settings_table()}
    assert documented == in_code, "regenerate with: .venv/bin/python -m chat_archive.config"


@pytest.mark.parametrize("in_file", [True, False])
def test_a_bad_value_names_where_it_came_from(tmp_path, monkeypatch, in_file):
    """"(file chat-archive.toml, or a CHAT_ARCHIVE_* variable)" named a file that was not there for a bad
    CHAT_ARCHIVE_API_PORT: the error names the variable, or the file, that gave the value."""
    monkeypatch.chdir(tmp_path)
    if in_file:
        (tmp_path / "chat-archive.toml").write_text("[api]\nport = 'eighty'\n")
    environ = {} if in_file else {"CHAT_ARCHIVE_API_PORT": "eighty"}
    with pytest.raises(ConfigError) as refused:
        load_config(environ=environ)
    where = "(in chat-archive.toml)" if in_file else "(from the environment variable CHAT_ARCHIVE_API_PORT)"
    assert str(refused.value).endswith(where), str(refused.value)
