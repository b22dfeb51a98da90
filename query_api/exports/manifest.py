"""The manifest every export carries, and the check of an export against it without the archive.

``manifest.json`` is the bundle's last member: what was asked for (rooms, range,
query, format), counts, the chain heads of the rooms covered at export time
(``verify --integrity`` on the archive can be compared with them) and the SHA-256
and size of every other member. ``verify_bundle`` recomputes those from the ZIP
alone; the manifest's own SHA-256, shown when the export is made, lets a recipient
check the manifest itself out of band.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import msgspec

from archive.events import ChainHead

MANIFEST_NAME = "manifest.json"
# What reading a damaged or unusual ZIP member raises besides OSError: a bad CRC, a corrupt deflate stream, a cut
# one, an encrypted member or an unknown compression method.
UNREADABLE = (zipfile.BadZipFile, OSError, zlib.error, EOFError, RuntimeError, NotImplementedError)
MANIFEST_VERSION = 1
# A manifest holds a few hundred bytes per room and file: this is an export of some 100,000 rooms. A bundle comes
# from elsewhere, and a larger manifest (a little deflated data can stand for any size) is not read.
MAX_MANIFEST_BYTES = 64 << 20


class FileEntry(msgspec.Struct, frozen=True):
    name: str
    sha256: str
    bytes: int
    events: int


class Manifest(msgspec.Struct, kw_only=True):
    manifest_version: int = MANIFEST_VERSION
    generator: str = "chat-archive"
    created_at: str
    format: str
    rooms: list[str]
    range_from: str | None = None
    range_to: str | None = None
    query: str | None = None
    counts: dict[str, int]
    chain_heads: list[ChainHead]
    files: list[FileEntry]


def manifest_bytes(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"


class ExportCheck(msgspec.Struct):
    ok: bool
    problems: list[str]
    manifest: Manifest | None
    manifest_sha256: str | None


def verify_bundle(path: str | Path) -> ExportCheck:
    """Check every member of an export against its manifest: present, same size, same SHA-256, nothing extra."""
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                raw = _read_manifest(zf)
            except KeyError:
                return ExportCheck(False, [f"no {MANIFEST_NAME}: not a chat-archive export"], None, None)
            if raw is None:
                too_large = f"{MANIFEST_NAME}: larger than {MAX_MANIFEST_BYTES >> 20} MiB, not read"
                return ExportCheck(False, [too_large], None, None)
            try:
                manifest = msgspec.json.decode(raw, type=Manifest)
            except msgspec.DecodeError as e:
                return ExportCheck(False, [f"{MANIFEST_NAME} is not a valid manifest: {e}"], None, None)
            problems = []
            listed = {entry.name: entry for entry in manifest.files}
            names = Counter(zf.namelist())
            for name in sorted(set(names) - listed.keys() - {MANIFEST_NAME}):
                problems.append(f"{name}: not listed in the manifest")
            # Only the last member of a name is checked (and read by most tools); another may be what a reader
            # shows: a bundle made by chat-archive holds each name once.
            for name, count in sorted(names.items()):
                if count > 1:
                    problems.append(f"{name}: {count} members of this name in the ZIP file")
            for entry in manifest.files:
                try:
                    digest, size = _digest(zf, entry.name)
                except KeyError:
                    problems.append(f"{entry.name}: missing")
                    continue
                except UNREADABLE as e:
                    problems.append(f"{entry.name}: damaged, cannot be read ({e})")
                    continue
                if size != entry.bytes:
                    problems.append(f"{entry.name}: {size} bytes, the manifest says {entry.bytes}")
                if digest != entry.sha256:
                    problems.append(f"{entry.name}: SHA-256 {digest[:16]}..., the manifest says {entry.sha256[:16]}...")
            if sum(e.events for e in manifest.files) != manifest.counts.get("events"):
                problems.append("the files' event counts do not add up to the manifest's total")
    except UNREADABLE as e:
        return ExportCheck(False, [f"not a readable ZIP file: {e}"], None, None)
    return ExportCheck(not problems, problems, manifest, hashlib.sha256(raw).hexdigest())


def _read_manifest(zf: zipfile.ZipFile) -> bytes | None:
    """The manifest's bytes; None if there are more than MAX_MANIFEST_BYTES (by the size the ZIP file gives, or
    found reading it: the directory's size is the file's word)."""
    if zf.getinfo(MANIFEST_NAME).file_size > MAX_MANIFEST_BYTES:
        return None
    with zf.open(MANIFEST_NAME) as member:
        raw = member.read(MAX_MANIFEST_BYTES + 1)
    return None if len(raw) > MAX_MANIFEST_BYTES else raw


def _digest(zf: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with zf.open(name) as member:
        while chunk := member.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
