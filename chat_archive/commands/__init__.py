"""Subcommands of the `chat-archive` CLI, one module per group."""

import getpass


def operator() -> str:
    """Who a compliance record names for what a command did (a hold, a purge, a purge's rebuild)."""
    return f"{getpass.getuser()} (command line)"
