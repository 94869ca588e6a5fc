"""Package blobs are shared on disk but not across deployment groups: a key scoped to groups
sees and releases only what was uploaded within its groups; unscoped keys see everything."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from alien.errors import ValidationError
from alien.manager.blobs import check_digest
from support.api import ApiClient
from support.names import unique
from support.payloads import digest_of, sample_manifest, sample_package

NOBODYS = "sha256:" + "0" * 64


def _scoped_key(admin: ApiClient, *groups: str) -> ApiClient:
    body = {"name": "op", "role": "operator", "groups": list(groups)}
    created = admin.post("/v1/api-keys", json=body)
    assert created.status_code == 201, created.text
    return admin.with_token(created.json()["key"])


def _release(client: ApiClient, digest: str, group: str) -> httpx.Response:
    body = {
        "manifest": sample_manifest(),
        "package_digest": digest,
        "targets": {"type": "group", "group": group},
    }
    return client.post("/v1/releases", json=body)


def _refusal(response: httpx.Response, digest: str) -> tuple[int, Any]:
    """The answer with the digest blanked out of the message, to compare with nothing's."""
    error = response.json()["error"]
    return response.status_code, {**error, "message": error["message"].replace(digest, "<d>")}


def test_a_scoped_key_cannot_see_or_release_a_blob_uploaded_outside_its_groups(
    admin: ApiClient,
) -> None:
    """The finding: a key of group B learnt the digest of an admin's (or group A's) package,
    got 200 for it, released it to B and downloaded A's bytes. Now each step answers exactly as
    for a digest nobody uploaded; the admin's view is unchanged. An admin's upload records no
    group, exactly like a blob stored before migration 0007: both are unscoped-only."""
    group_a, group_b = (admin.create_group(unique(g))["name"] for g in ("ga", "gb"))
    key_a, key_b = _scoped_key(admin, group_a), _scoped_key(admin, group_b)
    admins = admin.upload(sample_package(unique("admin")))["digest"]
    data_a = sample_package(unique("a"))
    a_s = key_a.upload(data_a)["digest"]
    for key, own_group, digest in (
        (key_b, group_b, admins),
        (key_b, group_b, a_s),
        (key_a, group_a, admins),
    ):
        nothing = _refusal(key.get(f"/v1/blobs/{NOBODYS}"), NOBODYS)
        assert nothing[0] == 404 and nothing[1]["code"] == "NOT_FOUND"
        assert _refusal(key.get(f"/v1/blobs/{digest}"), digest) == nothing
        no_release = _refusal(_release(key, NOBODYS, own_group), NOBODYS)
        assert no_release[0] == 422 and no_release[1]["code"] == "UNKNOWN_BLOB"
        assert _refusal(_release(key, digest, own_group), digest) == no_release
    assert key_b.get("/v1/releases", params={"limit": 500}).json()["items"] == []

    assert admin.get(f"/v1/blobs/{a_s}").json() == {"digest": a_s, "size": len(data_a)}
    assert _release(admin, a_s, group_b).status_code == 201
    assert _release(admin, admins, group_a).status_code == 201


def test_a_scoped_key_sees_its_groups_uploads_and_a_reupload_shares_one(
    admin: ApiClient,
) -> None:
    """Same group: see, release, download. Uploading the same bytes again from group B adds
    B's association (the content is stored once) without taking A's away; a key scoped to
    several groups shares its upload with each of them."""
    group_a, group_b, group_c = (admin.create_group(unique(g))["name"] for g in ("ga", "gb", "gc"))
    key_a, key_b = _scoped_key(admin, group_a), _scoped_key(admin, group_b)
    also_a = _scoped_key(admin, group_a)
    data = sample_package(unique("pkg"))
    digest = digest_of(data)
    blob = {"digest": digest, "size": len(data)}
    assert key_a.upload(data) == blob
    assert also_a.get(f"/v1/blobs/{digest}").json() == blob
    released = _release(also_a, digest, group_a)
    assert released.status_code == 201, released.text
    download = also_a.get(f"/v1/releases/{released.json()['id']}/package")
    assert download.status_code == 200 and download.content == data
    assert key_b.get(f"/v1/blobs/{digest}").status_code == 404

    assert key_b.upload(data) == blob
    assert key_b.get(f"/v1/blobs/{digest}").json() == blob
    assert key_a.get(f"/v1/blobs/{digest}").json() == blob
    assert _release(key_b, digest, group_b).status_code == 201
    assert key_b.upload(data) == blob  # a repeat by the same scope changes nothing

    wide, key_c = _scoped_key(admin, group_a, group_c), _scoped_key(admin, group_c)
    shared = sample_package(unique("wide"))
    assert wide.upload(shared)["digest"] == digest_of(shared)
    assert key_c.get(f"/v1/blobs/{digest_of(shared)}").status_code == 200
    assert key_c.get(f"/v1/blobs/{digest}").status_code == 404


def test_a_deleted_group_takes_its_blobs_visibility_with_it(admin: ApiClient) -> None:
    """A new group of the same name is another group: it does not inherit the old one's blobs."""
    name = unique("gone")
    key = _scoped_key(admin, admin.create_group(name)["name"])
    digest = key.upload(sample_package(unique("old")))["digest"]
    assert admin.delete(f"/v1/groups/{name}").status_code == 204
    successor = _scoped_key(admin, admin.create_group(name)["name"])
    assert successor.get(f"/v1/blobs/{digest}").status_code == 404
    assert admin.get(f"/v1/blobs/{digest}").status_code == 200


def test_a_digest_is_exactly_sha256_and_64_hex_characters() -> None:
    """``$`` would have let a trailing newline through (it matches before one)."""
    digest = "sha256:" + "a" * 64
    assert check_digest(digest) == digest
    for bad in (digest + "\n", digest.upper(), "sha256:" + "a" * 63, " " + digest):
        with pytest.raises(ValidationError):
            check_digest(bad)
