"""The protocol layer does no I/O and reads no clock: checked on the source, module by module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import alien.protocol

PROTOCOL_DIR = Path(alien.protocol.__file__).parent
# agent_channel.py is another engineer's module in this package; it follows the same rule.
MODULES = sorted(PROTOCOL_DIR.glob("*.py"))

FORBIDDEN_MODULES = {
    "asyncio",
    "http",
    "httpx",
    "io",
    "os",
    "pathlib",
    "random",
    "select",
    "selectors",
    "shutil",
    "socket",
    "ssl",
    "subprocess",
    "threading",
    "time",
    "urllib",
    "websockets",
}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "open", "time", "monotonic", "sleep"}


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _called_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                names.add(func.attr)
            elif isinstance(func, ast.Name):
                names.add(func.id)
    return names


def test_the_modules_are_found() -> None:
    assert {"commands.py", "deployment.py", "frames.py", "tunnel.py"} <= {m.name for m in MODULES}


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_no_io_imports_and_no_clock(module: Path) -> None:
    tree = ast.parse(module.read_text(), filename=str(module))
    assert not _imports(tree) & FORBIDDEN_MODULES
    assert not _called_names(tree) & FORBIDDEN_CALLS
