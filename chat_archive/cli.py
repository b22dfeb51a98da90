"""`chat-archive`: one command line over every part.

Each module in `chat_archive.commands` adds its subcommands with
`register(subparsers)`; a subcommand's handler takes (args, config) and returns
an exit status. Every ChatArchiveError becomes a one-line message: exit 2 for
a bad argument or setting (what the caller must change), exit 1 for the rest.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys

from archive.errors import ChatArchiveError, ConfigError, InvalidQueryError

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


# A relative time such as -1d: argparse would take it for an option of its own.
_RELATIVE_TIME = re.compile(r"^-\d+[smhdw]$")


def glue_relative_times(argv: list[str]) -> list[str]:
    """``--from -1d`` becomes ``--from=-1d``, so that an option's value may be a time back from now."""
    glued: list[str] = []
    for arg in argv:
        previous = glued[-1] if glued else ""
        if _RELATIVE_TIME.match(arg) and previous.startswith("--") and "=" not in previous and previous != "--":
            glued[-1] = f"{previous}={arg}"
        else:
            glued.append(arg)
    return glued


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(glue_relative_times(sys.argv[1:] if argv is None else argv))
    try:
        config = load_config(args.config)
        return args.handler(args, config) or 0
    except (ConfigError, InvalidQueryError) as e:
        # A bad setting, or an argument parsed after argparse (a time, a query, a cursor): exit status 2, as
        # argparse's own refusals.
        return fail(args.command, e, 2)
    except ChatArchiveError as e:
        return fail(args.command, e, 1)
    except OverflowError as e:
        # Times far out of range (on:9999-12-31, --from -99999999999d) overflow in date arithmetic below us:
        # a bad argument, as the API answers them (400 out_of_range), not a traceback.
        return fail(args.command, f"a time or number given is out of range ({e})", 2)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error of ours.
        sys.stderr.close()
        return 0


def fail(command: str, error: object, status: int) -> int:
    """The one-line message: a driver's message may go on in lines of its own (psycopg's "\n\tIs the server
    running on that host..."), which would read as output of something else."""
    print(f"chat-archive {command}: error: {' '.join(line.strip() for line in str(error).splitlines())}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
