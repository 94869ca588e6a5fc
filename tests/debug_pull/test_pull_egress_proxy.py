"""A pull-model deployment whose agent may only leave its network through the customer's HTTP
proxy (a real one: proxy.py, with Basic credentials, named in ``HTTPS_PROXY``/``HTTP_PROXY``):
its channel to the manager and the debug tunnel it dials both go through the proxy, and the
engineer's ``alien debug`` works as with a directly connected agent."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from dbg_world import AWS
from debug_moto import ROLE_NAME, MotoServer
from pull_world import debug_config, make_world, start_agent
from targets import Targets

from support.http_proxy import proxy_env, running_proxy
from support.manager import ManagerProcess


def test_an_agent_behind_the_customers_proxy_serves_debug_sessions(
    pull_manager: ManagerProcess, moto: MotoServer, targets: Targets, tmp_path: Path
) -> None:
    manager = urlsplit(pull_manager.url).netloc
    with running_proxy(tmp_path / "proxy", user="customer", password="egress") as proxy:
        env = proxy_env(proxy.url, proxy.url)
        deployment = start_agent(
            pull_manager, moto, tmp_path / "pull", debug_config(moto, [targets.http]), env=env
        )
        world = make_world(pull_manager, deployment, tmp_path)
        try:
            result = world.debug(AWS, "sts", "get-caller-identity", "--output", "text")
            assert result.returncode == 0, result.stderr
            assert f"assumed-role/{ROLE_NAME}/alien-debug-" in result.stdout
        finally:
            world.close()
            deployment.agent.stop()
        # Its channel and the session's tunnel: two CONNECTs, logged as each connection closed.
        tunnels = proxy.wait_for(f"CONNECT {manager}", count=2)
        assert len(tunnels) >= 2, proxy.access_log()
