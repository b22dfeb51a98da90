"""The chat-archive configuration a benchmark run uses: everything under its workdir."""

from __future__ import annotations

from pathlib import Path

import msgspec

from chat_archive.config import Config


def bench_config(workdir: Path, *, port: int = 0, extra: dict | None = None, store_url: str | None = None,
                 index: Path | None = None) -> Config:
    """The store (default: the workdir's SQLite store), its views (beside a SQLite store, in a
    PostgreSQL store's schema) and a search index (default: the workdir's ``index``)."""
    data = {
        "store": {"url": store_url or f"sqlite:///{workdir / 'events.sqlite'}"},
        "index": {"path": str(index or workdir / "index")},
        "api": {"host": "127.0.0.1", "port": port},
    }
    for section, values in (extra or {}).items():
        data.setdefault(section, {}).update(values)
    return msgspec.convert(data, Config, strict=False)


def config_toml(config: Config) -> str:
    """The config as TOML, for a `chat-archive --config FILE` subprocess."""
    lines = []
    for section in ("xmpp", "store", "index", "projections", "api"):
        lines.append(f"[{section}]")
        for key, value in msgspec.structs.asdict(getattr(config, section)).items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, (int, float)):
                lines.append(f"{key} = {value}")
            elif isinstance(value, str):
                lines.append(f"{key} = {msgspec.json.encode(value).decode()}")
            elif isinstance(value, (list, tuple)):
                lines.append(f"{key} = {msgspec.json.encode(list(value)).decode()}")
        lines.append("")
    return "\n".join(lines)
