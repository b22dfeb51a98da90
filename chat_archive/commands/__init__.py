"""Subcommands of the `chat-archive` CLI, one module per group."""
