"""A pull-model deployment whose agent may only leave its network through the customer's HTTP
proxy (a real one: proxy.py, with Basic credentials, named in ``HTTPS_PROXY``/``HTTP_PROXY``):
its channel to the manager, the debug tunnel it dials and every connection it makes for a session
— the re-signed AWS calls to moto (plain HTTP, so in absolute form) and the HTTP egress — go
through the proxy, and the engineer's ``alien debug`` works as with a directly connected agent.
``NO_PROXY`` exempts destinations as it would for httpx."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

from dbg_world import AWS, World, s3_round_trip
from debug_moto import ROLE_NAME, MotoServer
from pull_world import debug_config, make_world, start_agent
from targets import HELLO, Targets

from support.http_proxy import HttpProxy, proxy_env, running_proxy
from support.manager import ManagerProcess
from support.names import unique

CURL = shutil.which("curl") or "curl"


def _session_traffic(world: World, targets: Targets, tmp_path: Path) -> str:
    """What one engineer does: ``aws sts``, an ``aws s3`` round trip, ``curl`` to an allowed
    service. Returns the bucket the round trip used."""
    result = world.debug(AWS, "sts", "get-caller-identity", "--output", "text")
    assert result.returncode == 0, result.stderr
    assert f"assumed-role/{ROLE_NAME}/alien-debug-" in result.stdout
    bucket = unique("proxied")
    s3_round_trip(world, tmp_path, size_mib=1, bucket=bucket)
    result = world.debug(CURL, "-sS", "--fail-with-body", targets.http.url("/hello"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == HELLO
    return bucket


def _run_session(
    manager: ManagerProcess,
    moto: MotoServer,
    targets: Targets,
    proxy: HttpProxy,
    tmp_path: Path,
    env: dict[str, str],
) -> str:
    """An agent with ``env`` serves one engineer's traffic; stopped after it, so the proxy has
    logged every connection (proxy.py writes a line as a connection closes)."""
    deployment = start_agent(
        manager, moto, tmp_path / "pull", debug_config(moto, [targets.http]), env=env
    )
    world = make_world(manager, deployment, tmp_path)
    try:
        return _session_traffic(world, targets, tmp_path)
    finally:
        world.close()
        deployment.agent.stop()


def test_an_agent_behind_the_customers_proxy_serves_debug_sessions(
    pull_manager: ManagerProcess, moto: MotoServer, targets: Targets, tmp_path: Path
) -> None:
    manager, aws = urlsplit(pull_manager.url).netloc, urlsplit(moto.url).netloc
    with running_proxy(tmp_path / "proxy", user="customer", password="egress") as proxy:
        env = proxy_env(proxy.url, proxy.url)
        bucket = _run_session(pull_manager, moto, targets, proxy, tmp_path, env)
        # Its channel and the session's tunnel: two CONNECTs, logged as each connection closed.
        tunnels = proxy.wait_for(f"CONNECT {manager}", count=2)
        assert len(tunnels) >= 2, proxy.access_log()
        # The agent's re-signed S3 calls (plain HTTP: absolute form, the signature intact).
        assert proxy.wait_for(f"{aws}/{bucket}"), proxy.access_log()
        # The HTTP egress, to the address the agent resolved and checked.
        assert proxy.wait_for(f"GET {targets.http.authority}/hello"), proxy.access_log()


def test_no_proxy_exempts_a_destination(
    pull_manager: ManagerProcess, moto: MotoServer, targets: Targets, tmp_path: Path
) -> None:
    manager, aws = urlsplit(pull_manager.url).netloc, urlsplit(moto.url).netloc
    with running_proxy(tmp_path / "proxy", user="customer", password="egress") as proxy:
        exempt = f"{aws},{targets.http.authority}"  # by port: the manager stays proxied
        env = proxy_env(proxy.url, proxy.url) | {"NO_PROXY": exempt, "no_proxy": exempt}
        _run_session(pull_manager, moto, targets, proxy, tmp_path, env)
        assert proxy.wait_for(f"CONNECT {manager}", count=2), proxy.access_log()
        log = proxy.access_log()
        assert not [line for line in log if aws in line or targets.http.authority in line], log
