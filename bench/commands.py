"""Benchmark of remote commands: round-trip latency and throughput, against Celery + Redis.

    .venv/bin/python bench/commands.py [--agent test|real] [--database sqlite|postgres]
        [--sequential 1000] [--concurrency 64] [--total 5000] [--rounds 3] [--no-celery]

It starts a real manager (``alien serve``), a deployment whose current release has a
command-enabled function, and an agent answering a no-op command:

* ``--agent test`` — the test agent (``tests/commands/agent_double.py``, its own process): a
  WebSocket client speaking the command messages that answers every delivery at once;
* ``--agent real`` — ``alien-deploy up`` running an app with ``@alien.command("noop")``.

Measured, each in this run (the machine is shared: numbers from another run do not compare):

* **sequential** — ``--sequential`` round trips one after the other through
  ``alien.commands.CommandsClient.invoke`` (create-and-wait in one request): p50/p99 latency;
* **concurrent** — ``--concurrency`` invokers (``aiohttp``, so the load generator is not what is
  measured) running ``--total`` commands: throughput, p50/p99, CPU seconds per process (the
  function process included with ``--agent real``) and per command;
* **celery** — the same two shapes with Celery 5 + Redis (``redis-server`` on a free port, one
  worker, ``--pool=solo``), a no-op task ``delay().get()``.

Both systems run side by side and are measured in alternation, ``--rounds`` times (each round
a share of the sequential and concurrent counts): the machine is shared and its speed drifts by
tens of percent within a minute, which measuring one system after the other turned into ratios
of 0.6 and 1.07 for the same code a minute apart. Sequential samples are pooled; the concurrent
figures are the median round's (every round's throughput is listed too).

The output is one JSON object on stdout: every figure, the baseline's, and the ratios
(``latency_ratio`` < 1 and ``throughput_ratio`` > 1 mean faster than Celery).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "commands")]

from agent_double import running_deployment  # noqa: E402

from alien.commands import CommandsClient  # noqa: E402
from support.api import ApiClient  # noqa: E402
from support.databases import database_for  # noqa: E402
from support.manager import ManagerProcess  # noqa: E402

NOOP_APP = """
import alien

api = alien.Function("api").code(src="api", entrypoint="app:app").commands_enabled()
stack = alien.Stack("bench").add(api, "live")
"""
NOOP_HANDLER = """
import alien


@alien.command("noop")
def noop() -> None:
    return None


async def app(scope, receive, send):  # a function must serve something; commands are the point
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""
CELERY_TASKS = """
import os
from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_REDIS"], backend=os.environ["BENCH_REDIS"])
app.conf.update(task_serializer="json", result_serializer="json", worker_prefetch_multiplier=64)


@app.task
def noop():
    return None
"""


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "count": len(ordered),
    }


class CpuMeter:
    """CPU seconds (user + system) per named process over a measured span."""

    def __init__(self, processes: dict[str, int]) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in processes.items()}
        self._start = self._now()

    def _now(self) -> dict[str, float]:
        out = {}
        for name, proc in self._procs.items():
            times = proc.cpu_times()
            out[name] = times.user + times.system + times.children_user + times.children_system
        return out

    def seconds(self) -> dict[str, float]:
        end = self._now()
        return {name: round(end[name] - self._start[name], 3) for name in end}


@dataclass
class Sequential:
    """Round trips one after the other: each one's seconds, and the CPU the processes spent."""

    samples: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, other: Sequential) -> None:
        self.samples += other.samples
        for name, seconds in other.cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds

    def summary(self) -> dict[str, Any]:
        """Latency percentiles and CPU per round trip: where a lone command's time goes."""
        count = len(self.samples)
        per = {k: round(v / count * 1000, 3) for k, v in self.cpu.items()} if count else {}
        return {**percentiles(self.samples), "cpu_ms_per_command": per}


# --- the alien side ------------------------------------------------------------------------


def sequential_alien(
    manager: ManagerProcess, deployment: str, count: int, pids: dict[str, int]
) -> Sequential:
    samples = []
    with CommandsClient(deployment=deployment, token=manager.admin_key, manager=manager.url) as c:
        for _ in range(min(50, count)):  # warm up connections and caches
            c.invoke("noop", timeout=30)
        meter = CpuMeter({**pids, "bench": os.getpid()})
        for _ in range(count):
            started = time.perf_counter()
            c.invoke("noop", timeout=30)
            samples.append(time.perf_counter() - started)
    return Sequential(samples, meter.seconds())


def concurrent_alien(
    manager: ManagerProcess, deployment: str, concurrency: int, total: int, pids: dict[str, int]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {manager.admin_key}"}
    body = {"deployment": deployment, "command": "noop", "timeout": 60}

    async def run() -> tuple[list[float], float, dict[str, float]]:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(manager.url, headers=headers, connector=connector) as s:

            async def one() -> float:
                started = time.perf_counter()
                async with s.post("/v1/commands", params={"wait": "60"}, json=body) as response:
                    answer = await response.json()
                if answer.get("state") != "succeeded":
                    raise RuntimeError(f"a command did not succeed: {answer}")
                return time.perf_counter() - started

            await asyncio.gather(*(one() for _ in range(concurrency * 4)))  # warm up
            remaining = total
            samples: list[float] = []

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    samples.append(await one())

            meter = CpuMeter({**pids, "bench": os.getpid()})
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return samples, time.perf_counter() - started, meter.seconds()

    samples, elapsed, cpu = asyncio.run(run())
    return {
        **percentiles(samples),
        "throughput_per_s": round(len(samples) / elapsed, 1),
        "seconds": round(elapsed, 3),
        "cpu_seconds": cpu,
        "cpu_ms_per_command": {k: round(v / len(samples) * 1000, 3) for k, v in cpu.items()},
    }


@contextmanager
def test_agent(manager: ManagerProcess, token: str) -> Iterator[int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "commands" / "agent_double.py"),
            *("--manager", manager.url, "--token", token, "--handler", "noop"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("test agent ready")
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def real_agent(
    manager: ManagerProcess, admin: ApiClient, workdir: Path
) -> Iterator[tuple[int, str]]:
    """``alien-deploy up`` with a release of an app whose ``api`` function has ``noop``."""
    from alien.client.package import build_package
    from alien.stack import load_stack

    app = workdir / "app"
    (app / "api").mkdir(parents=True)
    (app / "alien_stack.py").write_text(NOOP_APP)
    (app / "api" / "app.py").write_text(NOOP_HANDLER)
    manifest = load_stack(app).manifest()
    package = build_package(app, manifest, workdir / "app.tar.gz")
    group = admin.create_group(f"bench-{os.getpid()}")["name"]
    token = admin.create_group_token(group)
    blob = admin.upload((workdir / "app.tar.gz").read_bytes())
    assert blob["digest"] == package.digest
    body = {
        "manifest": manifest.to_dict(),
        "package_digest": blob["digest"],
        "targets": {"type": "group", "group": group},
    }
    assert admin.post("/v1/releases", json=body).status_code == 201
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "alien.cli.deploy", "up", "--token", token, "--name", "bench"),
            *("--manager", manager.url, "--state-dir", str(workdir / "agent")),
            *("--log-level", "warning"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        ref = f"{group}/bench"
        deadline = time.monotonic() + 60  # the deployment exists once the agent has onboarded
        while admin.get(f"/v1/deployments/{ref}").status_code == 404:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the real agent did not onboard")
            time.sleep(0.1)
        waited = admin.get(
            f"/v1/deployments/{ref}/wait", params={"state": "running", "timeout": 60}
        )
        if waited.status_code != 200 or waited.json()["outcome"] != "matched":
            raise RuntimeError(f"the real agent did not get to running: {waited.text}")
        yield proc.pid, ref
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


# --- the Celery side -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def celery_worker(workdir: Path) -> Iterator[tuple[Any, dict[str, int]]]:
    """redis-server on a free port and one Celery worker (solo pool) with a no-op task."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    redis = subprocess.Popen(
        [
            redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    (workdir / "bench_tasks.py").write_text(textwrap.dedent(CELERY_TASKS))
    env = {**os.environ, "BENCH_REDIS": f"redis://127.0.0.1:{port}/0", "PYTHONPATH": str(workdir)}
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "bench_tasks", "worker", "--pool=solo"),
            *("--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ["BENCH_REDIS"] = env["BENCH_REDIS"]
    sys.path.insert(0, str(workdir))
    try:
        import bench_tasks  # type: ignore[import-not-found]

        deadline = time.monotonic() + 30
        while True:  # the worker is ready once a task comes back
            try:
                bench_tasks.noop.delay().get(timeout=2)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
        yield bench_tasks, {"celery_worker": worker.pid, "redis": redis.pid}
    finally:
        worker.terminate()
        worker.wait(10)
        redis.terminate()
        redis.wait(10)


def sequential_celery(tasks: Any, count: int, pids: dict[str, int]) -> Sequential:
    for _ in range(min(50, count)):
        tasks.noop.delay().get(timeout=30)
    samples = []
    meter = CpuMeter({**pids, "bench": os.getpid()})
    for _ in range(count):
        started = time.perf_counter()
        tasks.noop.delay().get(timeout=30)
        samples.append(time.perf_counter() - started)
    return Sequential(samples, meter.seconds())


def concurrent_celery(
    tasks: Any, concurrency: int, total: int, pids: dict[str, int]
) -> dict[str, Any]:
    """``concurrency`` threads each doing ``delay().get()`` (Celery's client is synchronous)."""
    samples: list[float] = []
    remaining = [total]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            started = time.perf_counter()
            tasks.noop.delay().get(timeout=60)
            with lock:
                samples.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    meter = CpuMeter({**pids, "bench": os.getpid()})
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = meter.seconds()
    return {
        **percentiles(samples),
        "throughput_per_s": round(len(samples) / elapsed, 1),
        "seconds": round(elapsed, 3),
        "cpu_seconds": cpu,
        "cpu_ms_per_command": {k: round(v / len(samples) * 1000, 3) for k, v in cpu.items()},
    }


# --- main ------------------------------------------------------------------------------------


@contextmanager
def alien_system(
    args: argparse.Namespace, workdir: Path
) -> Iterator[tuple[Any, str, dict[str, int]]]:
    """A manager and an agent serving ``noop``: (manager, deployment ref, pids to meter)."""
    with database_for(args.database) as url:
        manager = ManagerProcess(workdir / "manager", database_url=url).start()
        try:
            with manager.client() as admin:
                if args.agent == "test":
                    deployment = running_deployment(admin)
                    agent_cm: Any = test_agent(manager, deployment.token)
                    ref = deployment.ref
                else:
                    agent_cm = real_agent(manager, admin, workdir)
                with agent_cm as agent:
                    if args.agent == "real":
                        agent, ref = agent
                    pids = {"manager": manager._proc.pid, "agent": agent}  # type: ignore[union-attr]
                    # The function processes the real agent supervises run the handlers.
                    for n, child in enumerate(psutil.Process(agent).children(recursive=True)):
                        pids[f"function{n or ''}"] = child.pid
                    yield manager, ref, pids
        finally:
            manager.stop()


def pooled(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One concurrent figure from several rounds: the median round's throughput and latency,
    CPU per command over all of them."""
    cpu: dict[str, float] = {}
    for result in rounds:
        for name, seconds in result["cpu_seconds"].items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    count = sum(result["count"] for result in rounds)
    return {
        "throughput_per_s": round(statistics.median(r["throughput_per_s"] for r in rounds), 1),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in rounds), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in rounds), 3),
        "count": count,
        "rounds_throughput_per_s": [r["throughput_per_s"] for r in rounds],
        "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_ms_per_command": {k: round(v / count * 1000, 3) for k, v in cpu.items()},
    }


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Both systems up at once, measured in alternation, ``--rounds`` times: a machine whose
    speed drifts (a shared host) then slows both sides alike instead of one of them."""
    per_round_seq = max(1, args.sequential // args.rounds)
    per_round_total = max(args.concurrency, args.total // args.rounds)
    sequential = {"alien": Sequential(), "celery": Sequential()}
    concurrent: dict[str, list[dict[str, Any]]] = {"alien": [], "celery": []}
    with ExitStack() as stack:
        manager, ref, alien_pids = stack.enter_context(alien_system(args, workdir / "alien"))
        celery: Any = None
        if not args.no_celery:
            celery = stack.enter_context(celery_worker(workdir / "celery"))
        for _ in range(args.rounds):
            sequential["alien"].add(sequential_alien(manager, ref, per_round_seq, alien_pids))
            concurrent["alien"].append(
                concurrent_alien(manager, ref, args.concurrency, per_round_total, alien_pids)
            )
            if celery is not None:
                tasks, celery_pids = celery
                sequential["celery"].add(sequential_celery(tasks, per_round_seq, celery_pids))
                concurrent["celery"].append(
                    concurrent_celery(tasks, args.concurrency, per_round_total, celery_pids)
                )
    return {
        name: {"sequential": sequential[name].summary(), "concurrent": pooled(concurrent[name])}
        for name in sequential
        if sequential[name].samples
    }


def ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 3) if theirs else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--agent", choices=["test", "real"], default="test")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--total", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two systems")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery baseline")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "agent": args.agent,
        "database": args.database,
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="alien-bench-") as tmp:
        workdir = Path(tmp)
        for part in ("alien", "celery"):
            (workdir / part).mkdir()
        report |= measure(args, workdir)
    alien = report["alien"]
    report["targets"] = {
        "sequential_p50_ms_max": 5.0,
        "throughput_per_s_min": 1000,
        "sequential_p50_ok": alien["sequential"]["p50_ms"] <= 5.0,
        "throughput_ok": alien["concurrent"]["throughput_per_s"] >= 1000,
    }
    if "celery" in report:
        celery = report["celery"]
        report["ratios"] = {
            "latency_ratio": ratio(alien["sequential"]["p50_ms"], celery["sequential"]["p50_ms"]),
            "throughput_ratio": ratio(
                alien["concurrent"]["throughput_per_s"], celery["concurrent"]["throughput_per_s"]
            ),
            "throughput_ratio_per_round": [
                ratio(ours, theirs)
                for ours, theirs in zip(
                    alien["concurrent"]["rounds_throughput_per_s"],
                    celery["concurrent"]["rounds_throughput_per_s"],
                    strict=True,
                )
            ],
        }
    report["load_average_after"] = os.getloadavg()
    return report


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(), indent=2) + "\n")
