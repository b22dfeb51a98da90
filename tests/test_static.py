"""The code's shape, read from the source: the one-way data flow between the packages, and nothing
imported or named that is not used (nor used and never defined).

CONTRIBUTING.md's table says what each package may import; a module that reaches up the flow (the
archive importing a projection, anything importing ``chat_archive``) fails here, not in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pyflakes.api import checkPath
from pyflakes.reporter import Reporter

ROOT = Path(__file__).resolve().parent.parent
OURS = {"archive", "ingest", "projections", "query_api", "chat_archive", "bench"}
# What each package may import of ours (CONTRIBUTING.md, "Layout and the one-way data flow").
MAY_IMPORT = {
    "archive": set(),
    "ingest": {"archive"},
    "projections": {"archive"},
    "query_api": {"archive", "projections"},
    "chat_archive": OURS - {"bench"},
    "bench": OURS,
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_packages(path: Path) -> set[str]:
    """Our top-level packages a module imports (absolute imports; relative ones stay inside its package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in OURS)
    return found


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_imports_follow_the_data_flow(package):
    reaching = {
        str(path.relative_to(ROOT)): sorted(wrong)
        for path in _modules(package)
        if (wrong := _imported_packages(path) - MAY_IMPORT[package] - {package})
    }
    assert reaching == {}, f"{package} may import only {sorted(MAY_IMPORT[package])} of ours"


class _Collected(Reporter):
    def __init__(self):
        self.messages: list[str] = []

    def unexpectedError(self, filename, message):
        self.messages.append(f"{filename}: {message}")

    def syntaxError(self, filename, message, lineno, offset, text):
        self.messages.append(f"{filename}:{lineno}: {message}")

    def flake(self, message):
        # A package's __init__ imports to re-export (its public names) or to run a module's registration.
        if Path(message.filename).name == "__init__.py" and type(message).__name__ == "UnusedImport":
            return
        self.messages.append(str(message))


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_no_unused_or_undefined_names(package):
    reporter = _Collected()
    for path in _modules(package):
        checkPath(str(path), reporter)
    assert reporter.messages == []
