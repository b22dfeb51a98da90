"""`keys list|rotate|retire`: the server keys that sign cursors, widget tickets and sign-in sessions.

Rotation without downtime: `keys rotate` adds a key that signs from now on in
every process (within a minute; at once for verifying), while the older keys
keep verifying what they signed; `keys retire ID` later drops an old key,
and what it signed stops being accepted.
"""

from __future__ import annotations

import argparse

from archive.errors import ConfigError

from ..api_root import open_key_store


def register(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser("keys", help="list, rotate and retire the server's signing keys")
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="list the keys (never the secrets); the last one signs").set_defaults(handler=list_keys)
    actions.add_parser("rotate", help="add a new key that signs from now on").set_defaults(handler=rotate_key)
    retire = actions.add_parser("retire", help="drop an old key: what it signed stops being accepted")
    retire.add_argument("id")
    retire.set_defaults(handler=retire_key)


def _store(config):
    if config.api.signing_keys:
        raise ConfigError("the keys are set by [api] signing_keys in the configuration: rotate them there")
    return open_key_store(config)


def list_keys(args: argparse.Namespace, config) -> int:
    keys = _store(config).keys()
    for key in keys:
        print(f"{key.id}  {key.created_at}{'  (signs)' if key is keys[-1] else ''}")
    return 0


def rotate_key(args: argparse.Namespace, config) -> int:
    key = _store(config).rotate()
    print(f"key {key.id} signs from now on; older keys still verify until retired")
    return 0


def retire_key(args: argparse.Namespace, config) -> int:
    _store(config).retire(args.id)
    print(f"key {args.id} retired: what it signed is no longer accepted")
    return 0
