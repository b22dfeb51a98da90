"""Subcommands of the `chat-archive` CLI, one module per group."""

import getpass

from archive.wording import counted  # the commands' one way to count, as every part's

__all__ = ["counted", "operator"]


def operator() -> str:
    """Who a compliance record names for what a command did (a hold, a purge, a purge's rebuild)."""
    return f"{getpass.getuser()} (command line)"
