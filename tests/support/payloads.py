"""Small valid inputs for manager tests: a stack manifest and a code package."""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import Any


def sample_manifest(name: str = "my-app") -> dict[str, Any]:
    """A valid manifest (one frozen storage bucket and one kv store)."""
    return {
        "manifest_version": 1,
        "name": name,
        "resources": [
            {"id": "cache", "kind": "kv", "lifecycle": "live", "config": {}},
            {"id": "data", "kind": "storage", "lifecycle": "frozen", "config": {}},
        ],
    }


def sample_package(marker: str = "v1") -> bytes:
    """A small zip standing in for a code package; ``marker`` makes its digest unique."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("api/app.py", f"VERSION = {marker!r}\n")
    return buf.getvalue()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
