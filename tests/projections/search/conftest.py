"""Index directories on tmpfs where there is one: a tantivy commit's fsyncs cost
~100 ms on the CI disk and ~10 ms in memory, and these tests commit a lot."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

SHM = Path("/dev/shm")


@pytest.fixture
def index_root(tmp_path):
    if not SHM.is_dir():
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="chat-archive-search-", dir=SHM))
    yield root
    shutil.rmtree(root, ignore_errors=True)
