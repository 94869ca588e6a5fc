"""Permissions for a stack's management identity, derived from the manifest.

``derive_permissions(manifest, platform)`` is the entry point; the rule (monitor everything,
update only live resources, never touch data) is in ``levels.py``, its rendering per platform in
``local.py`` and ``aws.py``.
"""

from __future__ import annotations

from typing import Any

from alien.errors import ValidationError
from alien.stack.manifest import ManifestLike, as_manifest
from alien.stack.permissions.aws import AwsScope, aws_policy
from alien.stack.permissions.local import LocalGrant, local_grants, local_permissions

PLATFORMS = ("local", "aws")


def derive_permissions(
    manifest: ManifestLike,
    platform: str = "local",
    *,
    prefix: str | None = None,
    region: str = "*",
    account: str = "*",
    partition: str = "aws",
) -> dict[str, Any]:
    """What the management identity may do, as JSON-ready data for ``platform``.

    ``local``: ``{"platform": "local", "stack": ..., "grants": [{resource, lifecycle, actions}]}``.
    ``aws``: an IAM policy document; resources are named ``<prefix>-<id>`` (prefix defaults to
    the stack name) in ``region``/``account`` (``*`` matches any).
    """
    valid = as_manifest(manifest)
    if platform == "local":
        return local_permissions(valid)
    if platform == "aws":
        scope = AwsScope(partition=partition, region=region, account=account)
        return aws_policy(valid, prefix=prefix, scope=scope)
    raise ValidationError(
        f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)}", field="platform"
    )


__all__ = [
    "PLATFORMS",
    "AwsScope",
    "LocalGrant",
    "aws_policy",
    "derive_permissions",
    "local_grants",
    "local_permissions",
]
