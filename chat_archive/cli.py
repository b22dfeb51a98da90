"""`chat-archive`: one command line over every part.

Each module in `chat_archive.commands` adds its subcommands with
`register(subparsers)`; a subcommand's handler takes (args, config) and returns
an exit status. Every ChatArchiveError becomes a one-line message and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from archive.errors import ChatArchiveError

from . import commands
from .config import load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-archive",
        description="Event-sourced archive and search engine for XMPP group chat.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config file (default: ./chat-archive.toml if present)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module_info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        return args.handler(args, config) or 0
    except ChatArchiveError as e:
        print(f"chat-archive {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
