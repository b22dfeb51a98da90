"""`python -m bench.flood`: XMPP clients that flood one room, and one that counts what it receives.

Run as a separate process by the freshness stage so that the flood's client
work does not share a Python interpreter with the probes. Prints one JSON line:
messages sent, messages the observer received during the flood, and seconds.
The observer's receive rate is Prosody's delivery rate to one client on this
machine: the ceiling for the listener, which is one client too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from chat_archive.xmpp_users import XmppUsers


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--senders", nargs="+", required=True, help="JIDs")
    parser.add_argument("--observer", required=True, help="JID")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s over all senders; 0: as fast as possible")
    return parser.parse_args(argv)


def command(port: int, password: str, room: str, domain: str, senders: int, seconds: float) -> list[str]:
    """The flood's command line. Values as ``--name=value``: a random password may begin with "-", which
    argparse takes for an option when it stands alone (a run failed so: "--password: expected one argument")."""
    return [sys.executable, "-m", "bench.flood", f"--port={port}", f"--password={password}", f"--room={room}",
            f"--observer=observer@{domain}", f"--seconds={seconds}",
            "--senders", *[f"sender{i}@{domain}" for i in range(senders)]]


def main() -> None:
    args = parse()

    with XmppUsers("127.0.0.1", args.port, timeout=30) as users:
        observer = users.connect(args.observer, args.password)
        observer.join(args.room, "observer")
        senders = [users.connect(jid, args.password) for jid in args.senders]
        for i, sender in enumerate(senders):
            sender.join(args.room, f"flooder{i}")
        received = 0

        def count(stanza) -> None:
            nonlocal received
            if stanza["type"] == "groupchat" and stanza["body"].startswith("flood "):
                received += 1

        observer.client.add_event_handler("groupchat_message", count)
        print("ready", flush=True)
        sent = users.run(_flood(senders, args.room, args.seconds, args.rate))
        flood_end_received = received
        time.sleep(3)  # what was still queued at the server
        print(json.dumps({"sent": sent, "received_during": flood_end_received, "received_total": received,
                          "seconds": args.seconds}), flush=True)


async def _flood(senders, room: str, seconds: float, rate: float) -> int:
    sent = 0
    start = time.monotonic()
    gap = len(senders) / rate if rate else 0.0
    while (now := time.monotonic()) - start < seconds:
        for sender in senders:
            sender.client.send_message(mto=room, mbody=f"flood {sent} lorem ipsum dolor sit amet", mtype="groupchat")
            sent += 1
        # As fast as the server takes it: wait while our queues or socket buffers back up.
        while any(_backlog(s.client) for s in senders) and time.monotonic() - start < seconds:
            await asyncio.sleep(0.002)
        await asyncio.sleep(max(0.0, gap - (time.monotonic() - now)) if gap else 0)
    return sent


def _backlog(client) -> bool:
    transport = client.transport
    return client.waiting_queue.qsize() > 50 or (transport is not None and transport.get_write_buffer_size() > 65536)


if __name__ == "__main__":
    main()
