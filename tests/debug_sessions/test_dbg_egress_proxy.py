"""``alien debug`` from behind the engineer's HTTP proxy (a real one: proxy.py, with Basic
credentials): the calls to the manager and the tunnel go through it, as httpx-based commands'
calls do; the debugged command's calls to the loopback proxy do not."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from dbg_world import AWS, World
from debug_moto import ROLE_NAME

from support.http_proxy import proxy_env, running_proxy


def test_alien_debug_works_through_the_engineers_proxy(world: World, tmp_path: Path) -> None:
    manager = urlsplit(world.manager.url).netloc
    with running_proxy(tmp_path / "proxy") as proxy:
        result = world.debug(
            AWS, "sts", "get-caller-identity", "--query", "Arn", "--output", "text",
            env=proxy_env(proxy.url),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert ROLE_NAME in result.stdout
        assert proxy.wait_for(f"POST {manager}/v1/debug-sessions")  # opened through the proxy
        assert proxy.wait_for(f"CONNECT {manager}")  # the tunnel too
        # The aws CLI's own requests went straight to the loopback proxy (NO_PROXY is set for
        # it), so the proxy saw nothing but the manager.
        assert all(f" {manager}" in line for line in proxy.access_log())


def test_a_proxy_refusing_the_credentials_fails_with_a_one_line_reason(
    world: World, tmp_path: Path
) -> None:
    with running_proxy(tmp_path / "proxy") as proxy:
        result = world.debug(
            AWS, "sts", "get-caller-identity", env=proxy_env(proxy.url_without_credentials)
        )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "407" in lines[0], result.stderr
    assert world.sessions() == []  # nothing was opened
