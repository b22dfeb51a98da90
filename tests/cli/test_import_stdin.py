"""`chat-archive import -` reads standard input twice (checked whole first, then imported): it keeps it on disk, not
in memory, so a backup piped in (`zcat backup.gz | chat-archive import -`) needs no memory of its size."""

from __future__ import annotations

import subprocess
import sys

from tests.cli.test_events_commands import CLI

PEAK = """
import resource, subprocess, sys
with open(sys.argv[1], "rb") as given:
    subprocess.run(sys.argv[2:], stdin=given, capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_standard_input_is_not_held_in_memory(tmp_path):
    piped = tmp_path / "in.jsonl"
    with piped.open("wb") as out:
        for _ in range(2000):  # 200 MB of blank lines (skipped), longer than memory a small import needs
            out.write(b" " * 100_000 + b"\n")
    measured = subprocess.run([sys.executable, "-c", PEAK, str(piped), *CLI, "import", "-"], capture_output=True,
                              text=True, timeout=120, env={"CHAT_ARCHIVE_STORE_URL": f"sqlite:///{tmp_path}/e.sqlite",
                                                           "PATH": "/usr/bin:/bin"})
    peak_kib = int(measured.stdout.split()[-1])
    assert peak_kib < 150_000, f"import - peaked at {peak_kib // 1024} MiB reading 200 MB of standard input"
