"""A key scoped to deployment groups on the commands routes — real manager.

It resolves deployment names among its own groups only: a bare name is unique or ambiguous
among the deployments it may see, and a deployment of another group answers exactly what a
nonexistent one does (no existence oracle across groups).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from agent_double import Deployment, create_command, running_deployment

from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique


@dataclass
class Scoped:
    client: ApiClient
    key_id: str
    own: Deployment
    """In the key's group; another group holds a deployment of the same name."""
    elsewhere: str
    """The name of deployments only other groups hold (two: ambiguous, were it looked up)."""


@pytest.fixture
def scoped(admin: ApiClient) -> Iterator[Scoped]:
    own = running_deployment(admin)
    other_group = admin.create_group(unique("grp"))["name"]
    token = admin.create_group_token(other_group)
    admin.onboard(token, own.name)
    elsewhere = admin.onboard(token, unique("dep"))["deployment"]["name"]
    third_group = admin.create_group(unique("grp"))["name"]
    admin.onboard(admin.create_group_token(third_group), elsewhere)
    body = {"name": unique("scoped"), "role": "operator", "groups": [own.group]}
    created = admin.post("/v1/api-keys", json=body)
    assert created.status_code == 201, created.text
    with admin.with_token(created.json()["key"]) as client:
        yield Scoped(client, created.json()["id"], own, elsewhere)


def _not_found(response: httpx.Response, ref: str) -> dict[str, object]:
    """The error body with the reference taken out (it names what the caller asked for)."""
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    return {**error, "message": error["message"].replace(ref, "?")}


def test_a_bare_name_resolves_among_the_keys_own_groups(scoped: Scoped) -> None:
    created = create_command(scoped.client, scoped.own.name)
    assert created.status_code == 201, created.text
    assert created.json()["deployment_id"] == scoped.own.id


def test_another_groups_deployment_is_not_found_like_a_missing_one(scoped: Scoped) -> None:
    nowhere = unique("nothing")
    expected = _not_found(create_command(scoped.client, nowhere), nowhere)
    assert _not_found(create_command(scoped.client, scoped.elsewhere), scoped.elsewhere) == expected
    upload = scoped.client.post(
        "/v1/commands/payloads", params={"deployment": scoped.elsewhere}, content=b'{"a":1}'
    )
    missing = scoped.client.post(
        "/v1/commands/payloads", params={"deployment": nowhere}, content=b'{"a":1}'
    )
    assert _not_found(upload, scoped.elsewhere) == _not_found(missing, nowhere)


def test_params_upload_by_bare_name(scoped: Scoped) -> None:
    uploaded = scoped.client.post(
        "/v1/commands/payloads", params={"deployment": scoped.own.name}, content=b'{"b":2}'
    )
    assert uploaded.status_code == 201, uploaded.text
    created = create_command(scoped.client, scoped.own.name, params_ref=uploaded.json())
    assert created.status_code == 201, created.text


def test_a_refused_params_record_leaves_no_file(
    commands_manager: ManagerProcess, admin: ApiClient, scoped: Scoped
) -> None:
    """The key is revoked while its upload streams: the record after the upload refuses it,
    and the file the upload stored goes (no row names it, so retention never would)."""
    document = b'{"orphan":"' + unique("x").encode() + b'"}'
    revoked = threading.Event()

    def body() -> Iterator[bytes]:
        yield document[:5]
        time.sleep(0.5)  # the upload was authorized before its body is read
        response = admin.delete(f"/v1/api-keys/{scoped.key_id}")
        assert response.status_code in (200, 204), response.text
        revoked.set()
        yield document[5:]

    refused = scoped.client.post(
        "/v1/commands/payloads", params={"deployment": scoped.own.name}, content=body()
    )
    assert revoked.is_set()
    assert refused.status_code == 401, refused.text
    digest = hashlib.sha256(document).hexdigest()
    assert not list(commands_manager.data_dir.rglob(digest))
