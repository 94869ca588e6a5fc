"""``alien.client`` against a real manager: typed errors, token scopes, verified downloads."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_support import admin_client, unique, write_app

from alien.agent.channel import WebSocketChannel
from alien.client import AsyncManagerClient, ClientConfig, ManagerClient, ManagerUnreachable
from alien.client.aio import PackageMismatch
from alien.client.publish import publish
from alien.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationError
from support.databases import DATABASES, database_for
from support.manager import ManagerProcess


@pytest.fixture(scope="module", params=DATABASES)
def manager(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagerProcess]:
    with database_for(request.param) as url:
        proc = ManagerProcess(tmp_path_factory.mktemp("manager"), database_url=url).start()
        try:
            yield proc
        finally:
            proc.stop()


@pytest.fixture
def admin(manager: ManagerProcess) -> Iterator[ManagerClient]:
    with admin_client(manager) as client:
        yield client


def _client(manager: ManagerProcess, token: str) -> ManagerClient:
    return ManagerClient(ClientConfig(base_url=manager.url, token=token))


def test_manager_errors_come_back_as_typed_errors(
    manager: ManagerProcess, admin: ManagerClient
) -> None:
    with pytest.raises(NotFound) as missing:
        admin.get_deployment("no-such-deployment")
    assert missing.value.code == "NOT_FOUND" and missing.value.field == "deployment"

    with pytest.raises(ValidationError) as invalid:
        admin.create_group("Not A Name")
    assert invalid.value.field == "name"

    group = unique("grp")
    admin.create_group(group)
    with pytest.raises(Conflict):
        admin.create_group(group)

    bad = "ax_key_0123456789abcdef_" + "x" * 43
    with pytest.raises(Unauthenticated) as refused, _client(manager, bad) as stranger:
        stranger.list_groups()
    assert bad not in str(refused.value)


def test_an_unreachable_manager_is_one_clear_error() -> None:
    config = ClientConfig(base_url="http://127.0.0.1:9", token="ax_key_secret-never-shown")
    with pytest.raises(ManagerUnreachable) as err, ManagerClient(config) as client:
        client.list_deployments()
    assert "http://127.0.0.1:9" in err.value.message and err.value.field == "manager"
    assert "secret-never-shown" not in err.value.message and "secret" not in repr(config)


def test_a_group_token_can_only_onboard(manager: ManagerProcess, admin: ManagerClient) -> None:
    group = unique("grp")
    admin.create_group(group)
    group_token = admin.create_group_token(group).token
    assert group_token is not None and group_token.startswith("ax_dg_")

    with _client(manager, group_token) as onboarder:
        onboarded = onboarder.onboard(unique("dep"), "local")
        other = onboarder.onboard(unique("dep"), "local")  # it may onboard several
        for attempt in (
            onboarder.list_deployments,
            onboarder.list_groups,
            lambda: onboarder.create_group(unique("grp")),
            lambda: onboarder.get_deployment(onboarded.deployment.id),
            lambda: onboarder.create_group_token(group),
        ):
            with pytest.raises(Forbidden):
                attempt()

    async def agent_side(token: str) -> None:
        async with AsyncManagerClient(ClientConfig(base_url=manager.url, token=token)) as client:
            with pytest.raises(Forbidden):
                await client.agent_next(0, None)
            with pytest.raises(Forbidden):
                await WebSocketChannel.open(manager.url, token)

    asyncio.run(agent_side(group_token))

    # The deployment token: its own deployment, nothing else, and no onboarding.
    with _client(manager, onboarded.token) as agent:
        assert agent.get_deployment(onboarded.deployment.id).id == onboarded.deployment.id
        with pytest.raises(NotFound):  # as if it did not exist: no oracle of the others
            agent.get_deployment(other.deployment.id)
        for attempt in (
            agent.list_deployments,
            lambda: agent.onboard(unique("dep"), "local"),
        ):
            with pytest.raises(Forbidden):
                attempt()


def test_packages_are_content_addressed_and_downloads_verified(
    manager: ManagerProcess, admin: ManagerClient, tmp_path: Path
) -> None:
    group = unique("grp")
    admin.create_group(group)
    with _client(manager, admin.create_group_token(group).token or "") as onboarder:
        onboarded = onboarder.onboard(unique("dep"), "local")
    app = write_app(tmp_path / "app", "v1")
    targets = {"type": "deployments", "deployments": [onboarded.deployment.id]}
    first = publish(admin, app, targets)
    again = publish(admin, app, targets)
    assert first.uploaded and not again.uploaded
    assert first.release.package_digest == again.release.package_digest
    assert first.release.id != again.release.id

    release = first.release
    url = f"/v1/releases/{release.id}/package"

    async def download(digest: str, size: int) -> Path:
        dest = tmp_path / "pkg"
        config = ClientConfig(base_url=manager.url, token=onboarded.token)
        async with AsyncManagerClient(config) as client:
            await client.download(url, dest, digest=digest, size=size)
        return dest

    good = asyncio.run(download(release.package_digest, release.package_size))
    assert good.stat().st_size == release.package_size and good.stat().st_mode & 0o777 == 0o600
    good.unlink()
    with pytest.raises(PackageMismatch) as wrong_digest:
        asyncio.run(download("sha256:" + "0" * 64, release.package_size))
    assert wrong_digest.value.field == "package_digest"
    with pytest.raises(PackageMismatch) as wrong_size:
        asyncio.run(download(release.package_digest, release.package_size - 1))
    assert wrong_size.value.field == "package_size"
    assert not (tmp_path / "pkg").exists()
