"""The one configuration: a TOML file plus `CHAT_ARCHIVE_<SECTION>_<KEY>` overrides.

Each part owns the Struct of its section; this module composes them, reads
`chat-archive.toml` (or `--config FILE`), applies environment overrides and
validates everything up front so that a typo fails at start, not hours later.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_origin

import msgspec

from archive.errors import ConfigError
from archive.settings import RetentionSettings, StoreSettings
from ingest.settings import XmppSettings
from projections.settings import IndexSettings, ProjectionSettings
from query_api.settings import ApiSettings

DEFAULT_CONFIG_FILE = "chat-archive.toml"
ENV_PREFIX = "CHAT_ARCHIVE_"


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The whole configuration, one attribute per TOML section."""

    xmpp: XmppSettings = msgspec.field(default_factory=XmppSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    index: IndexSettings = msgspec.field(default_factory=IndexSettings)
    projections: ProjectionSettings = msgspec.field(default_factory=ProjectionSettings)
    api: ApiSettings = msgspec.field(default_factory=ApiSettings)


def sections() -> dict[str, type[msgspec.Struct]]:
    """Section name -> settings Struct, in file order."""
    return {f.name: f.type for f in msgspec.structs.fields(Config)}


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the config file (an explicit path must exist), then apply env overrides."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    file = Path(path) if path is not None else Path(DEFAULT_CONFIG_FILE)
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{file}: not valid TOML: {e}") from e
    _apply_environment(data, environ)
    try:
        config = msgspec.convert(data, Config, strict=False)
    except msgspec.ValidationError as e:
        section, key, message = _refused_setting(str(e))
        raise ConfigError(f"invalid configuration: {message} ({_source(section, key, file, environ)})") from e
    return with_absolute_paths(config, Path.cwd())


# The settings that name a file or a directory: (section, key).
PATH_SETTINGS = (("xmpp", "status_file"), ("index", "path"), ("api", "export_dir"))


def with_absolute_paths(config: Config, base: Path) -> Config:
    """``config`` with every file and directory setting made absolute against ``base`` (the working directory,
    where the README says `./data/` is), once, here: a relative path handed on is resolved by whatever opens it,
    and Flask's ``send_file`` resolves one against its own package directory (every export download of the
    default `data/exports` answered "expired"). An empty setting stays empty (none). The store URLs are left as
    written: only SQLite reads them, against the working directory too."""
    changed = {}
    for section, key in PATH_SETTINGS:
        settings = changed.get(section, getattr(config, section))
        value = getattr(settings, key)
        if value and not Path(value).is_absolute():
            changed[section] = msgspec.structs.replace(settings, **{key: str(base / value)})
    return msgspec.structs.replace(config, **changed) if changed else config


def _refused_setting(error: str) -> tuple[str | None, str | None, str]:
    """The section and key a validation error is about, where it says, and the error said as a reader knows the
    file: msgspec gives a field's path (`` at `$.api.port` ``), or only its section's (a section's own check, whose
    message names its setting as ``[api] time_zone``; an unknown key), or none (an unknown section)."""
    unknown = re.fullmatch(r"Object contains unknown field `(\w+)`(?: - at `\$\.(\w+)`)?", error)
    if unknown and unknown.group(2):
        section, key = unknown.group(2), unknown.group(1)
        return section, key, f"[{section}] {key} is no setting (see the README's settings table)"
    if unknown:
        return unknown.group(1), None, f"[{unknown.group(1)}] is no section (see the README's settings table)"
    path = re.search(r"at `\$\.(\w+)(?:\.(\w+))?", error)
    named = re.match(r"\[(\w+)\] (\w+)", error)
    if path and path.group(2):
        return path.group(1), path.group(2), error
    if named:
        return named.group(1), named.group(2), error
    return (path.group(1) if path else None), None, error


def _source(section: str | None, key: str | None, file: Path, environ: Mapping[str, str]) -> str:
    """Where the value an error is about came from: the variable that overrides the file, else the file (it said
    "file chat-archive.toml, or a CHAT_ARCHIVE_* variable" where there was no such file)."""
    if section is not None and key is not None:
        variable = f"{ENV_PREFIX}{section}_{key}".upper()
        if variable in environ:
            return f"from the environment variable {variable}"
    return f"in {file}" if file.is_file() else f"from a {ENV_PREFIX}* variable"


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    known = sections()
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, key = _split_env_name(name, known)
        struct = known[section]
        field = {f.name: f for f in msgspec.structs.fields(struct)}[key]
        data.setdefault(section, {})[key] = _parse_env_value(value, field.type)


def _split_env_name(name: str, known: dict[str, type]) -> tuple[str, str]:
    rest = name[len(ENV_PREFIX) :].lower()
    for section, struct in known.items():
        if rest.startswith(section + "_"):
            key = rest[len(section) + 1 :]
            if key in {f.name for f in msgspec.structs.fields(struct)}:
                return section, key
    raise ConfigError(f"environment variable {name} names no setting (see the README's settings table)")


def _parse_env_value(value: str, annotation: Any) -> Any:
    if get_origin(annotation) in (list, tuple):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value  # msgspec converts "8080" -> 8080, "true" -> True with strict=False


def settings_table() -> list[tuple[str, str, str, str]]:
    """(setting, environment variable, default, meaning) for every setting, for the README."""
    rows = []
    for section, struct in sections().items():
        docs = _field_docs(struct)
        for field in msgspec.structs.fields(struct):
            default = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
            rows.append(
                (
                    f"[{section}] {field.name}",
                    f"{ENV_PREFIX}{section.upper()}_{field.name.upper()}",
                    msgspec.json.encode(default).decode(),
                    docs.get(field.name, ""),
                )
            )
    return rows


def _field_docs(struct: type) -> dict[str, str]:
    """Attribute docstrings (the string literal after each field) of a settings Struct."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(struct)))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            docs[node.target.id] = following.value.value
    return docs


def print_settings_table() -> None:
    """Print the README's settings table (Markdown) from the settings Structs."""
    print("| setting | environment variable | default | meaning |")
    print("|---|---|---|---|")
    for setting, env, default, meaning in settings_table():
        print(f"| `{setting}` | `{env}` | `{default}` | {meaning} |")


if __name__ == "__main__":
    print_settings_table()
