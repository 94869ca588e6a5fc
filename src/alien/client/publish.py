"""Publishing a release: load the stack, package its code, upload, create the release.

What ``alien release`` does, usable from Python too (tests, benchmarks, CI scripts). The package
is built in a temporary file and streamed to the manager, whose blob store is content-addressed:
if the same bytes were uploaded before (same code, same stack) the upload is skipped.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alien.client.models import Release
from alien.client.package import PackageInfo, build_package
from alien.client.sync import ManagerClient
from alien.errors import ValidationError
from alien.stack.loader import load_stack


def targets_for(
    *, all_: bool = False, group: str | None = None, deployments: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``targets`` body from CLI-style choices; the default is every deployment."""
    chosen = sum([all_, group is not None, bool(deployments)])
    if chosen > 1:
        raise ValidationError("choose one of --all, --group or --deployment", field="targets")
    if group is not None:
        return {"type": "group", "group": group}
    if deployments:
        return {"type": "deployments", "deployments": list(deployments)}
    return {"type": "all"}


@dataclass(frozen=True)
class Published:
    release: Release
    package: PackageInfo
    uploaded: bool
    """``False`` when the manager already had these exact bytes."""


def publish(
    client: ManagerClient,
    app_dir: Path | None,
    targets: Mapping[str, Any],
    *,
    description: str | None = None,
) -> Published:
    """Validate the stack in ``app_dir`` (default: cwd), package, upload and release it."""
    loaded = load_stack(app_dir)
    manifest = loaded.manifest()
    with tempfile.TemporaryDirectory(prefix="alien-release-") as scratch:
        archive = Path(scratch) / "package.tar.gz"
        info = build_package(loaded.app_dir, manifest, archive)
        uploaded = not client.has_blob(info.digest)
        if uploaded:
            client.upload_blob(archive, info.digest)
    release = client.create_release(manifest.to_dict(), info.digest, targets, description)
    return Published(release=release, package=info, uploaded=uploaded)
