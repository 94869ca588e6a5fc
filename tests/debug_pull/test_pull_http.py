"""HTTP egress through the agent with the real ``curl``: ``HTTP_PROXY``/``HTTPS_PROXY`` point at
the session's forward proxy, which sends each request through the tunnel to the agent; the agent
reaches only the destinations on the customer's allowlist. Every request is audited."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dbg_world import World
from pull_world import PullDeployment
from targets import HELLO, Targets

CURL = shutil.which("curl") or "curl"
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def _request(world: World, session: dict[str, Any]) -> dict[str, Any]:
    [request] = world.requests(session["id"])
    return request


def test_curl_reaches_an_allowlisted_service_inside(world: World, targets: Targets) -> None:
    url = targets.http.url("/hello")
    before = len(targets.http.server.seen)
    result = world.debug(CURL, "-sS", "--fail-with-body", "-H", "Authorization: Bearer app", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == HELLO
    # The destination saw the client's own Authorization, never the session's proxy credentials.
    assert targets.http.server.seen[before:] == [("GET", "/hello", "Bearer app")]
    request = _request(world, world.latest_session())
    assert request["target"] == f"http:GET {url}"
    assert request["outcome"] == "succeeded" and request["details"]["status"] == 200
    assert request["details"]["bytes_out"] == len(HELLO)


def test_a_body_streams_to_the_service_and_back(
    world: World, targets: Targets, tmp_path: Path
) -> None:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    url = targets.http.url("/echo")
    result = world.debug(CURL, "-sS", "--fail-with-body", "--data-binary", f"@{upload}", url)
    assert result.returncode == 0, result.stderr
    digest, size = result.stdout.split()
    assert digest == hashlib.sha256(upload.read_bytes()).hexdigest()
    assert int(size) == upload.stat().st_size
    request = _request(world, world.latest_session())
    assert request["details"]["bytes_in"] == upload.stat().st_size


def test_a_host_outside_the_allowlist_is_refused_and_audited(
    world: World, targets: Targets
) -> None:
    url = targets.outside.url("/hello")
    result = world.debug(CURL, "-sS", "-w", "\n%{http_code}", url)
    assert result.returncode == 0, result.stderr
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "403"
    assert "not on this deployment's debug egress allowlist" in body
    assert targets.outside.authority in body
    assert targets.outside.server.seen == []  # nothing left the agent
    request = _request(world, world.latest_session())
    assert request["outcome"] == "denied" and request["target"] == f"http:GET {url}"
    assert request["details"]["status"] == 403
    assert request["details"]["error"] == "DESTINATION_NOT_ALLOWED"


def test_https_goes_through_connect_end_to_end(world: World, targets: Targets) -> None:
    assert targets.https.ca_file is not None
    url = targets.https.url("/hello")
    result = world.debug(
        CURL, "-sS", "--fail-with-body", "--cacert", str(targets.https.ca_file), url
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == HELLO
    request = _request(world, world.latest_session())
    assert request["target"] == f"http:CONNECT {targets.https.authority}"
    assert request["outcome"] == "succeeded", request["details"]
    assert request["details"]["status"] == 200
    assert request["details"]["bytes_in"] > 0 and request["details"]["bytes_out"] > len(HELLO)


def test_connect_outside_the_allowlist_is_refused(world: World, targets: Targets) -> None:
    url = f"https://{targets.outside.authority}/hello"
    result = world.debug(CURL, "-sS", "-k", url)
    assert result.returncode != 0
    assert "403" in result.stderr
    request = _request(world, world.latest_session())
    assert request["outcome"] == "denied"
    assert request["target"] == f"http:CONNECT {targets.outside.authority}"


PROBE = """
import os, httpx
from urllib.parse import urlsplit
proxy = os.environ["HTTP_PROXY"]
parts = urlsplit(proxy)
bare = f"http://{parts.hostname}:{parts.port}"
wrong = bare.replace("://", "://alien:guess@")
for name, via in (("without", bare), ("wrong", wrong), ("with", proxy)):
    with httpx.Client(proxy=via, trust_env=False) as client:
        print(name, client.get(os.environ["TARGET"]).status_code)
"""


def test_the_forward_proxy_needs_the_session_token(world: World, targets: Targets) -> None:
    """Another local process that finds the proxy but lacks the token gets 407, and nothing it
    sends goes anywhere."""
    env = world.cli_env(TARGET=targets.http.url("/hello"))
    result = subprocess.run(
        world.debug_argv("python3", "-c", PROBE),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["without", "407", "wrong", "407", "with", "200"]
    session = world.latest_session()
    assert session["requests"] == 1


def _customer_policy(deployment: PullDeployment, *options: str) -> None:
    """``alien-deploy policy set`` by the customer's admin, on the agent's own state dir."""
    state = deployment.agent.state_dir
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alien.cli.deploy",
            "policy",
            "set",
            "--state-dir",
            str(state),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_customers_policy_narrows_what_a_session_reaches(
    world: World, targets: Targets, deployment: PullDeployment
) -> None:
    """``debug.json`` allows both services; the deployment's policy allows the https one only,
    then no ``http`` channel at all: the agent serves each new session no more than both allow,
    and says so in the offer the CLI reads."""
    plain, secure = targets.http, targets.https
    assert secure.ca_file is not None
    cacert = ("--cacert", str(secure.ca_file))
    try:
        _customer_policy(deployment, "--egress-allow", secure.authority)
        before = len(plain.server.seen)
        result = world.debug(CURL, "-sS", "-w", "\n%{http_code}", plain.url("/hello"))
        assert result.stdout.rsplit("\n", 1)[1] == "403"
        assert _request(world, world.latest_session())["details"]["error"] == (
            "DESTINATION_NOT_ALLOWED"
        )
        assert len(plain.server.seen) == before
        result = world.debug(CURL, "-sS", "--fail-with-body", *cacert, secure.url("/hello"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.encode() == HELLO

        _customer_policy(deployment, "--channels", "aws")
        before = len(secure.server.seen)
        result = world.debug(CURL, "-sS", *cacert, secure.url("/hello"))
        assert result.returncode != 0
        assert len(secure.server.seen) == before  # nothing left the agent
    finally:
        _customer_policy(deployment, "--egress-allow", "all", "--channels", "all")
