"""Rollout benchmark: how fast a release reaches N agents, and what each connected agent costs.

For each N (1, 10, 50; ``--quick``: 1, 10) on this machine, with real processes throughout:

1. start a fresh manager (``alien serve``, embedded SQLite) and measure its idle RSS;
2. onboard N agents (``alien-deploy up``, one process each, one state dir each) and wait until
   all are connected; measure the manager's RSS again: (connected - idle) / N is the manager's
   memory per connected agent;
3. ``POST /v1/releases`` of a minimal stack (one tiny public function, so each agent runs one
   function process too) and time until every deployment runs it (the manager's long-poll wait,
   one per deployment, concurrently): the first rollout (download + start) ...
4. ... then a second release (an update: start the new version, switch, stop the old one).

Prints one JSON document on stdout; progress goes to stderr. Usage::

    .venv/bin/python bench/rollout.py [--quick] [--counts 1,10,50]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil

from alien.client import ClientConfig, ManagerClient
from alien.client.package import build_package
from alien.manager.server import ADMIN_KEY_PREFIX, LISTENING_PREFIX
from alien.stack import load_stack

START_TIMEOUT = 60.0
CONNECT_TIMEOUT = 300.0
ROLLOUT_TIMEOUT = 300.0
MIB = 1024 * 1024

APP = """\
VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": VERSION.encode()}})
"""
STACK = """\
import alien

api = alien.Function("api").code(src="api", entrypoint="app:app").ingress("public")
stack = alien.Stack("bench").add(api, "live")
"""


def progress(message: str) -> None:
    print(f"[rollout] {message}", file=sys.stderr, flush=True)


def write_app(root: Path, version: str) -> Path:
    (root / "api").mkdir(parents=True, exist_ok=True)
    (root / "api" / "app.py").write_text(APP.format(version=version))
    (root / "alien_stack.py").write_text(STACK)
    return root


class Manager:
    """``alien serve`` on a free port; its URL and generated admin key come from its stdout."""

    def __init__(self, root: Path) -> None:
        cmd = [sys.executable, "-m", "alien.cli.main", "serve", "--port", "0"]
        cmd += ["--data-dir", str(root / "data"), "--log-level", "warning"]
        self.proc = spawn(cmd, root / "manager.log", stdout=subprocess.PIPE, text=True)
        self.url = self.admin_key = ""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        for line in self.proc.stdout:
            if line.startswith(ADMIN_KEY_PREFIX):
                self.admin_key = line.removeprefix(ADMIN_KEY_PREFIX).strip()
            if line.startswith(LISTENING_PREFIX):
                self.url = line.removeprefix(LISTENING_PREFIX).strip()
                break
            if time.monotonic() > deadline:
                break
        if not self.url or not self.admin_key:
            raise SystemExit(f"the manager did not start; see {root / 'manager.log'}")

    def client(self) -> ManagerClient:
        return ManagerClient(ClientConfig(base_url=self.url, token=self.admin_key, timeout=120))

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def spawn(cmd: list[str], log: Path, **kwargs: Any) -> subprocess.Popen:
    """Start ``cmd`` with stderr to ``log`` and without our own ``ALIEN_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIEN_")}
    with log.open("w") as err:
        return subprocess.Popen(cmd, stderr=err, env=env, **kwargs)


def start_agents(root: Path, manager: Manager, token: str, count: int) -> list[subprocess.Popen]:
    agents = []
    for index in range(count):
        cmd = [sys.executable, "-m", "alien.cli.deploy", "up", "--token", token]
        cmd += ["--name", f"a{index}", "--manager", manager.url]
        cmd += ["--state-dir", str(root / f"agent-{index}"), "--log-level", "warning"]
        agents.append(spawn(cmd, root / f"agent-{index}.log", stdout=subprocess.DEVNULL))
    return agents


def stop_agents(agents: list[subprocess.Popen]) -> None:
    for proc in agents:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in agents:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_connected(client: ManagerClient, group: str, count: int) -> float:
    started = time.monotonic()
    while True:
        deps = client.list_deployments(group=group)
        if len(deps) == count and all(d.connected for d in deps):
            return time.monotonic() - started
        if time.monotonic() - started > CONNECT_TIMEOUT:
            raise SystemExit(f"only {sum(d.connected for d in deps)}/{count} agents connected")
        time.sleep(0.2)


def rollout(manager: Manager, app: Path, group: str, dep_ids: list[str]) -> dict[str, Any]:
    """Seconds from ``POST /v1/releases`` to each deployment running the release."""
    loaded = load_stack(app)
    manifest = loaded.manifest()
    with tempfile.TemporaryDirectory() as scratch, manager.client() as client:
        archive = Path(scratch) / "package.tar.gz"
        info = build_package(loaded.app_dir, manifest, archive)
        client.upload_blob(archive, info.digest)
        done: dict[str, float] = {}
        lock = threading.Lock()
        release_ready = threading.Event()
        started = 0.0
        release_id = ""

        def wait_one(dep_id: str) -> None:
            release_ready.wait()
            with manager.client() as own:
                result = own.wait_deployment(dep_id, release=release_id, timeout=ROLLOUT_TIMEOUT)
            if result.outcome != "matched":
                raise SystemExit(f"{dep_id}: {result.outcome} ({result.deployment.error})")
            with lock:
                done[dep_id] = time.monotonic() - started

        with ThreadPoolExecutor(max_workers=len(dep_ids)) as pool:
            futures = [pool.submit(wait_one, dep_id) for dep_id in dep_ids]
            started = time.monotonic()
            release_id = client.create_release(
                manifest.to_dict(), info.digest, {"type": "group", "group": group}
            ).id
            release_ready.set()
            for future in futures:
                future.result()
    times = sorted(done.values())
    return {
        "release": release_id,
        "all_running_s": round(times[-1], 3),
        "median_s": round(statistics.median(times), 3),
        "p95_s": round(times[math.ceil(len(times) * 0.95) - 1], 3),
        "first_s": round(times[0], 3),
    }


def bench(count: int, workdir: Path) -> dict[str, Any]:
    root = workdir / f"n{count}"
    root.mkdir()
    manager = Manager(root)
    with ExitStack() as cleanup:
        cleanup.callback(manager.stop)
        with manager.client() as client:
            client.list_groups()  # warm the app up (imports, the database pool)
            time.sleep(1.0)
            idle = manager.rss()
            group = "bench"
            client.create_group(group)
            token = client.create_group_token(group).token or ""
            progress(f"N={count}: starting {count} agents")
            agents = start_agents(root, manager, token, count)
            cleanup.callback(stop_agents, agents)
            connect_s = wait_connected(client, group, count)
            time.sleep(1.0)
            connected = manager.rss()
            dep_ids = [d.id for d in client.list_deployments(group=group)]
        app = write_app(root / "app", "v1")
        progress(f"N={count}: all connected after {connect_s:.1f}s; first release")
        first = rollout(manager, app, group, dep_ids)
        progress(f"N={count}: first rollout {first['all_running_s']}s; update")
        update = rollout(manager, write_app(app, "v2"), group, dep_ids)
        progress(f"N={count}: update {update['all_running_s']}s")
    return {
        "agents": count,
        "connect_all_s": round(connect_s, 3),
        "first_release": first,
        "update_release": update,
        "manager_rss_idle_mib": round(idle / MIB, 1),
        "manager_rss_connected_mib": round(connected / MIB, 1),
        "manager_rss_per_agent_kib": round((connected - idle) / count / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 1 and 10 only")
    parser.add_argument("--counts", help="comma-separated agent counts (default 1,10,50)")
    args = parser.parse_args()
    counts = [1, 10] if args.quick else [1, 10, 50]
    if args.counts:
        counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory(prefix="alien-rollout-") as workdir:
        results = [bench(count, Path(workdir)) for count in counts]
    report = {
        "benchmark": "rollout",
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "what": "seconds from POST /v1/releases until every deployment runs the release "
        "(agents and their function processes are real processes on this machine); the "
        "manager's RSS per connected agent",
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
