"""Endpoint grants: a process's reported address is taken only if it is what it was granted."""

from __future__ import annotations

from pathlib import Path

import pytest

from alien.platforms.local.endpoints import HTTP, LOOPBACK_TCP, Endpoint, Grant


def _loopback_grant(tmp_path: Path) -> Grant:
    deep = tmp_path / ("d" * 120)  # too long for a socket path: the grant falls back to loopback
    grant = Grant.issue(HTTP, deep, "api")
    assert grant.requested == LOOPBACK_TCP
    return grant


@pytest.mark.parametrize("port", [1, 8080, 65535])
def test_a_loopback_grant_takes_the_port_the_process_bound(tmp_path: Path, port: int) -> None:
    grant = _loopback_grant(tmp_path)
    endpoint = grant.accept(f"tcp:127.0.0.1:{port}")
    assert endpoint == Endpoint(f"tcp:127.0.0.1:{port}", grant.token)
    assert endpoint.base_url == f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    "reported",
    [
        "tcp:127.0.0.1:1@example.com:8080",  # httpx would send to example.com
        "tcp:127.0.0.1:8080/path",
        "tcp:127.0.0.1:8080\n",
        "tcp:127.0.0.1:0",
        "tcp:127.0.0.1:65536",
        "tcp:127.0.0.1:08080",
        "tcp:127.0.0.1:",
        "tcp:127.0.0.1:+80",
        "tcp:127.0.0.1:\u0661\u0662",  # Arabic-Indic digits: int() would take them
        "tcp:127.0.0.2:8080",
        "tcp:localhost:8080",
        "unix:/tmp/elsewhere.sock",
    ],
)
def test_a_loopback_grant_refuses_anything_but_its_host_and_a_port(
    tmp_path: Path, reported: str
) -> None:
    assert _loopback_grant(tmp_path).accept(reported) is None


def test_a_socket_grant_takes_only_its_own_socket(tmp_path: Path) -> None:
    grant = Grant.issue(HTTP, tmp_path, "api")
    assert grant.requested.startswith(f"unix:{tmp_path}/http-")
    assert grant.accept(grant.requested) == Endpoint(grant.requested, grant.token)
    assert grant.accept("tcp:127.0.0.1:8080") is None
