"""Subcommands of the `chat-archive` CLI, one module per group."""

import getpass


def counted(n: int, noun: str) -> str:
    """``1 room``, ``2 rooms``: what a command prints is read by people (nouns here take an s)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def operator() -> str:
    """Who a compliance record names for what a command did (a hold, a purge, a purge's rebuild)."""
    return f"{getpass.getuser()} (command line)"
