"""Every stable error code the code base can answer with is listed in docs/ERRORS.md.

Codes are a public contract (callers branch on them), so a code that exists only in the source is
a bug. The scan looks for the three ways codes are spelled in ``src/alien``: a class attribute
``code = "X"``, a keyword ``code="X"``, and a module constant ``X = "X"``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SPELLINGS = re.compile(
    r'\bcode\s*=\s*"(?P<a>[A-Z][A-Z0-9_]{2,})"|^(?P<name>[A-Z][A-Z0-9_]{2,}) = "(?P=name)"$',
    re.MULTILINE,
)


def codes_in_source() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src" / "alien").rglob("*.py"):
        for match in SPELLINGS.finditer(path.read_text()):
            found.add(match.group("a") or match.group("name"))
    return found


def test_every_error_code_is_documented() -> None:
    errors_md = (ROOT / "docs" / "ERRORS.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", errors_md))
    codes = codes_in_source()
    assert len(codes) > 50  # the scan itself still finds the codes
    assert sorted(codes - documented) == []
