"""`migrate --to URL`: move the archive to another store (SQLite to PostgreSQL); `export-log FILE`:
the whole log and the audit trails as compressed JSON lines, a portable backup (`import FILE` reads it back)."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from pathlib import Path

import msgspec

from archive.application import StoreLocation, open_event_store
from archive.errors import ConfigError, StoreError
from archive.events import ChainHead, is_audit_trail
from projections.rebuild import ProgressBar
from query_api.server_tables import copy_server_tables

from . import counted
from ..bootstrap import open_store, rebuild_projections
from ..cli_audit import audited_cli_read
from ..log_file import audit_line, backup_line, trailer
from ..migration import check, copy_log, progress_file
from ..output_file import output_file


def register(subparsers: argparse._SubParsersAction) -> None:
    migrate = subparsers.add_parser(
        "migrate", help="copy the archive to another store (e.g. PostgreSQL), check it, rebuild views and index there"
    )
    migrate.add_argument("--to", required=True, metavar="URL", help="the target store, e.g. postgresql://user@host/db")
    migrate.add_argument(
        "--index", metavar="PATH",
        help="search index directory to build for the target (default: [index] path with -migrated appended)",
    )  # fmt: skip
    migrate.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    migrate.set_defaults(handler=run_migrate)

    export = subparsers.add_parser("export-log", help="write the whole event log as gzip-compressed JSON lines")
    export.add_argument("file", help="the file to write (e.g. archive.jsonl.gz), or - for standard output")
    export.set_defaults(handler=run_export_log)


def run_migrate(args: argparse.Namespace, config) -> int:
    if StoreLocation.parse(args.to) == StoreLocation.parse(config.store.url):
        raise ConfigError("--to names the store the archive is in already")
    index = args.index or config.index.path.rstrip("/") + "-migrated"
    target_config = msgspec.structs.replace(
        config,
        store=msgspec.structs.replace(config.store, url=args.to),
        projections=msgspec.structs.replace(config.projections, url=""),  # the target's own views
        index=msgspec.structs.replace(config.index, path=index),
    )
    progress = progress_file(Path(config.xmpp.status_file).parent, config.store.url, args.to)
    with open_store(config) as source, open_event_store(args.to) as target:
        bar = None if args.quiet else ProgressBar("migrate: copy log", 0, source.head())
        copied = copy_log(source, target, progress, on_page=bar.update if bar else None)
        if bar:
            bar.update(copied.position, final=True)
        report = check(source, target)
        if not report.ok:
            for problem in report.mismatches[:20]:
                print(f"chat-archive migrate: {problem}", file=sys.stderr)
            raise StoreError(f"the copy does not match the source in {len(report.mismatches)} streams: run migrate again")
        print(
            f"chat-archive migrate: {counted(copied.appended, 'event', grouped=True)} copied "
            f"({copied.read - copied.appended:,} there already) and {counted(copied.audit_records, 'audit record', grouped=True)}, "
            f"beside the target's own trail; checked: {counted(report.events, 'event', grouped=True)} in "
            f"{counted(report.streams, 'stream', grouped=True)}, counts and chain heads match",
            file=sys.stderr,
        )
        carried = copy_server_tables(config.store.url, args.to)
        print(
            f"chat-archive migrate: carried {counted(carried['api_tokens'], 'API token')}, "
            f"{counted(carried['signing_keys'], 'signing key')} and {counted(carried['ended_sessions'], 'sign-out')}",
            file=sys.stderr,
        )
        rebuild_projections(target_config, target, ["transcripts", "presence", "search"], progress=not args.quiet)
    print(f"migrated: point [store] url at the target and [index] path at {index}, then start the archive there")
    progress.unlink(missing_ok=True)
    return 0


def run_export_log(args: argparse.Namespace, config) -> int:
    """A backup (``chat_archive.log_file``): every event at its position and version, every audit trail's records
    at their numbers, then a trailer with the lines' count and SHA-256 and the chain heads."""
    # The store opened first, the file then written beside its name and renamed over it once complete
    # (``output_file``): a backup that fails leaves the previous one as it was.
    with open_store(config) as store, audited_cli_read(store, "export-log") as events:
        with output_file(args.file) as output:
            records = _write_backup(store, output, events)
    print(f"exported {counted(events.results, 'event', grouped=True)} and {counted(records, 'audit record', grouped=True)} to "
          f"{args.file}", file=sys.stderr)
    return 0


def _write_backup(store, output, events) -> int:
    """The backup's lines into ``output``, gzip-compressed; ``events.results`` counts the events written; returns
    how many audit records were. Recorded (``events``) around the whole file's writing, its last flush's too."""
    digest = hashlib.sha256()
    with gzip.GzipFile(fileobj=output, mode="wb", compresslevel=6) as out:
        for version, record in store.read_log_versions(0, page_size=5000):
            line = backup_line(version, record)
            digest.update(line)
            events.results += 1
            out.write(line)
        heads = [head for head in store.chain_heads() if not is_audit_trail(head.stream)]
        records = 0
        for trail in store.audit_trails():
            for record in store.read_audit(trail=trail):
                line = audit_line(trail, record)
                digest.update(line)
                out.write(line)
                records += 1
            # The trail's head at the last record written: records appended since are not in the file.
            heads.append(ChainHead(trail, record.position, store.audit_link(trail, record.position).hex(), 1))
        out.write(trailer(digest.hexdigest(), events.results + records, sorted(heads, key=lambda h: h.stream),
                          store.copied_checkpoints()))
    return records
