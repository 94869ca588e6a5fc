"""The long-poll transport, forced and as the fallback when a proxy refuses WebSockets.

Both still get releases pushed: the manager answers the held ``GET /v1/agent/next`` the moment a
release targets the deployment, so convergence is as quick as over the WebSocket.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from agent_support import AgentProcess, PinnedManager, admin_client, write_app
from no_websocket_proxy import NoWebSocketProxy

from alien.client.publish import publish

CONVERGE_LIMIT = 5.0


def test_polling_agents_get_releases_pushed(
    sqlite_manager: PinnedManager, agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    admin = admin_client(sqlite_manager)
    admin.create_group("polled")
    token = admin.create_group_token("polled").token
    proxy = NoWebSocketProxy(sqlite_manager.port).start()
    try:
        forced = agent_factory(sqlite_manager, "forced", token, transport="poll").start()
        behind_proxy = agent_factory(sqlite_manager, "proxied", token)
        behind_proxy.manager_url = proxy.url
        behind_proxy.start()
        agents = [forced, behind_proxy]

        app = write_app(tmp_path / "app", "v1")
        v1 = publish(admin, app, {"type": "group", "group": "polled"}).release
        for agent in agents:
            agent.wait_running(v1.id)
            assert agent.get().text == "v1"

        write_app(app, "v2")
        started = time.monotonic()
        v2 = publish(admin, app, {"type": "group", "group": "polled"}).release
        for agent in agents:
            limit = CONVERGE_LIMIT
            result = admin.wait_deployment(agent.deployment_id, release=v2.id, timeout=limit)
            assert result.outcome == "matched", agent.log()
        assert time.monotonic() - started < CONVERGE_LIMIT
        for agent in agents:
            dep = admin.get_deployment(agent.deployment_id)
            assert dep.connected and dep.status_detail["transport"] == "poll"
            assert dep.status_detail["urls"] == agent.wait_running(v2.id)
        assert proxy.refused >= 1
        assert "using HTTPS long-polling" in behind_proxy.log()
    finally:
        proxy.close()
