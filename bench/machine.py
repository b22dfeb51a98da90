"""What the results were measured on: CPU, cores, memory, disk, and library versions."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from importlib import metadata


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{mem / 2**30:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
    }


def versions(postgres_dsn: str | None = None) -> dict[str, str]:
    found = {"python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version}
    for dist in ("eventsourcing", "tantivy", "msgspec", "psycopg", "Flask", "waitress", "slixmpp"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    if postgres_dsn:
        try:
            import psycopg

            with psycopg.connect(postgres_dsn, connect_timeout=3) as conn:
                found["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
        except Exception as e:  # noqa: BLE001 - a version line must never stop the run
            found["postgres"] = f"unreachable ({type(e).__name__})"
    return found
