"""Debug tunnel benchmark, push and pull model: what ``alien debug`` costs an AWS client.

One run measures the same boto3 workload — a 200 MiB S3 download and 500 small requests (1 KiB
GETs) from one process — over five paths, against the same moto server (signature checks on):

* ``direct``: boto3 → moto, with the deployment role's credentials;
* ``alien_debug``: boto3 → loopback proxy (SigV4 check with the session keys) → tunnel over a
  WebSocket → manager (allowlist, audit, re-signing with the assumed role) → moto, i.e. the
  command run by ``alien debug <deployment> -- …`` on a push-model deployment;
* ``alien_debug_pull``: boto3 → loopback proxy → tunnel → manager (relays each stream onto the
  agent's tunnel, audits) → a real agent (``alien-deploy``; re-signs with its own assumed role)
  → moto: the same command on a deployment run by an agent;
* ``alien_debug_pull_http``: the same through an agent that reaches the manager through a proxy
  refusing WebSockets, so it long-polls and its leg of the tunnel is made of plain requests
  (``alien.tunnel.http_leg``: a round trip per batch each way) — what an agent behind such a
  proxy gets;
* ``ssh_forward``: boto3 → ``ssh -L`` → sshd → moto (OpenSSH from Debian, default cipher), a
  generic encrypted tunnel as a baseline. Installed with apt-get if missing; skipped with a
  reason when that is impossible.

Also: the session set-up time (``alien debug`` launched → the command running, minus a plain
start of the same command: a one-line Python command that prints the time, measured before the
bulk runs; for the pull model this includes the manager asking the agent to dial its leg), split
into the ``alien`` CLI's own start (interpreter plus ``import alien.cli.main``, which loads the
``debug`` group only, less a bare interpreter) and the rest (the run path's imports, opening the
session, the tunnel handshake with the manager's AssumeRole — started when the session is
granted — the loopback proxy, spawning the command). Each set-up figure is
the fastest of three runs, for the baseline and for ``alien debug`` alike: on a shared machine
that is the run least disturbed by others (on a quiet one the three agree). Further: CPU seconds
per process for the whole run, for the download alone and per small request (read by the
measured client from the processes of its path: on a machine shared with other work, "who was
busy" tells a slow path from a starved one); the machine's load averages at the start and the
end (above the core count, the paths competed with other work); and ratios to the baselines.

The five paths are measured in alternation, ``--rounds`` times (each round downloads the object
and makes its share of the small requests, in a session of its own for the ``alien debug``
paths): the machine is shared and its speed drifts within a minute, which measuring the paths
one after the other turned into ratios that moved by half between runs. Download rates are over
all rounds, latencies pooled, CPU summed; the push/direct download ratio of each round is
listed too. Prints one JSON document on stdout; progress on stderr. Usage::

    .venv/bin/python bench/debug_tunnel.py [--size-mib 200] [--requests 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [
    str(REPO / "tests"),
    *(str(REPO / "tests" / d) for d in ("debug", "debug_sessions", "debug_pull", "agent")),
]

from debug_moto import MotoServer, start_moto  # noqa: E402
from no_websocket_proxy import NoWebSocketProxy  # noqa: E402
from pull_world import start_agent  # noqa: E402

from support.manager import ManagerProcess  # noqa: E402
from support.names import unique  # noqa: E402

REGION = "eu-west-1"
BUCKET = "bench-debug-tunnel"
BIG_KEY = "big.bin"
SMALL_KEY = "small.bin"
MIB = 1024 * 1024
CHUNK = MIB


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- the measured client (runs in its own process: ``--worker``) ------------------------------


def worker() -> None:
    """Download the big object, then time ``BENCH_REQUESTS`` small GETs; print JSON.

    Also the CPU seconds each process of the path spent in each phase (``BENCH_WATCH``: the
    pids of moto, the manager, the agent; ``alien debug`` is this process's parent when
    wrapped), so a figure can be read as "who was busy" on a machine shared with others."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.get_object(Bucket=BUCKET, Key=SMALL_KEY)["Body"].read()  # warm-up: connection, creds
    watch = _watched()
    before = _cpu(watch)
    begin = time.perf_counter()
    body = s3.get_object(Bucket=BUCKET, Key=BIG_KEY)["Body"]
    size = sum(len(chunk) for chunk in body.iter_chunks(CHUNK))
    download_seconds = time.perf_counter() - begin
    after_download = _cpu(watch)
    latencies = []
    for _ in range(int(os.environ["BENCH_REQUESTS"])):
        t = time.perf_counter()
        s3.get_object(Bucket=BUCKET, Key=SMALL_KEY)["Body"].read()
        latencies.append((time.perf_counter() - t) * 1000)
    after_small = _cpu(watch)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "bytes": size,
                "download_seconds": download_seconds,
                "latencies_ms": latencies,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "cpu_download": _delta(before, after_download),
                "cpu_small": _delta(after_download, after_small),
            }
        ),
        flush=True,
    )


def _watched() -> dict[str, psutil.Process]:
    pids = dict(item.split("=") for item in os.environ.get("BENCH_WATCH", "").split(",") if item)
    if os.environ.get("BENCH_WRAPPED"):
        pids["alien_debug"] = str(os.getppid())
    return {"client": psutil.Process(), **{k: psutil.Process(int(v)) for k, v in pids.items()}}


def _cpu(processes: dict[str, psutil.Process]) -> dict[str, float]:
    return {name: sum(process.cpu_times()[:2]) for name, process in processes.items()}


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before[name], 3) for name in before}


# --- set-up ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def role_credentials(moto: MotoServer) -> dict[str, str]:
    sts = boto3.client(
        "sts",
        endpoint_url=moto.url,
        region_name=REGION,
        aws_access_key_id=moto.manager_key_id,
        aws_secret_access_key=moto.manager_secret,
    )
    creds = sts.assume_role(RoleArn=moto.role_arn, RoleSessionName="bench")["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }


def seed(moto: MotoServer, creds: dict[str, str], size_mib: int, workdir: Path) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.url,
        region_name=REGION,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
    )
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    big = workdir / BIG_KEY
    with big.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(os.urandom(MIB))
    s3.upload_file(str(big), BUCKET, BIG_KEY)
    big.unlink()
    s3.put_object(Bucket=BUCKET, Key=SMALL_KEY, Body=os.urandom(1024))


def base_env(requests: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ALIEN_"))}
    env.update(
        BENCH_REQUESTS=str(requests),
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_DEFAULT_REGION=REGION,
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
    )
    return env


WORKER_ARGV = [sys.executable, str(Path(__file__).resolve()), "--worker"]


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def run_path(argv: list[str], env: dict[str, str], watch: dict[str, int]) -> dict[str, Any]:
    """Run the worker (directly or wrapped); CPU of the watched processes over the run."""
    before = {name: cpu_seconds(pid) for name, pid in watch.items()}
    env = {
        **env,
        "BENCH_WATCH": ",".join(f"{name}={pid}" for name, pid in watch.items()),
        **({"BENCH_WRAPPED": "1"} if argv != WORKER_ARGV else {}),  # under alien debug
    }
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=900)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {process.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["cpu_other"] = {name: cpu_seconds(pid) - before[name] for name, pid in watch.items()}
    return result


def summary(raw: dict[str, Any]) -> dict[str, Any]:
    latencies = sorted(raw["latencies_ms"])
    return {
        "download_mib_per_s": round(raw["bytes"] / MIB / raw["download_seconds"], 1),
        "download_seconds": round(raw["download_seconds"], 3),
        "small_requests": len(latencies),
        "small_p50_ms": round(statistics.median(latencies), 3),
        "small_p90_ms": round(latencies[int(len(latencies) * 0.9)], 3),
        "small_requests_per_s": round(1000 * len(latencies) / sum(latencies), 1),
        "cpu_seconds_download": raw["cpu_download"],
        "cpu_ms_per_small_request": {
            k: round(1000 * v / len(latencies), 3) for k, v in raw["cpu_small"].items()
        },
        "cpu_seconds": {
            "client": round(raw["cpu_seconds"], 2),
            **{k: round(v, 2) for k, v in raw["cpu_other"].items()},
        },
    }


# --- the ssh -L baseline -----------------------------------------------------------------------


def ensure_sshd() -> str | None:
    """Path of sshd, installing openssh-server if needed; ``None`` (with a message) if not."""
    if Path("/usr/sbin/sshd").exists():
        return "/usr/sbin/sshd"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        progress("skipping ssh -L: sshd is missing and cannot be installed (needs root + apt)")
        return None
    progress("installing openssh-server with apt-get (for the ssh -L baseline)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "openssh-server"],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not Path("/usr/sbin/sshd").exists():
        progress(f"skipping ssh -L: apt-get failed: {done.stderr.strip()[-300:]}")
        return None
    return "/usr/sbin/sshd"


def start_ssh_forward(stack: ExitStack, workdir: Path, target_port: int) -> int | None:
    """sshd on a free loopback port plus ``ssh -N -L``; the local port of the forward."""
    sshd = ensure_sshd()
    if sshd is None:
        return None
    ssh_dir = workdir / "ssh"
    ssh_dir.mkdir(mode=0o700)
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_dir / name)], check=True
        )
    shutil.copy(ssh_dir / "client.pub", ssh_dir / "authorized_keys")
    sshd_port, forward_port = free_port(), free_port()
    config = ssh_dir / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {sshd_port}\nHostKey {ssh_dir / 'host'}\n"
        f"AuthorizedKeysFile {ssh_dir / 'authorized_keys'}\nPasswordAuthentication no\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        f"PidFile {ssh_dir / 'sshd.pid'}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    daemon = subprocess.Popen([sshd, "-D", "-f", str(config), "-E", str(ssh_dir / "sshd.log")])
    stack.callback(daemon.terminate)
    wait_for_port(sshd_port)
    client = subprocess.Popen(
        [
            "ssh", "-N", "-L", f"127.0.0.1:{forward_port}:127.0.0.1:{target_port}",
            "-p", str(sshd_port), "-i", str(ssh_dir / "client"),
            "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={ssh_dir / 'known_hosts'}",
            "-o", "ExitOnForwardFailure=yes", f"{os.environ.get('USER', 'root')}@127.0.0.1",
        ],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stack.callback(client.terminate)
    wait_for_port(forward_port)
    return forward_port


NAGLE_SUSPECT_MS = 30.0


def diagnose(paths: dict[str, dict[str, Any]]) -> list[str]:
    """Point out a small-request p50 that is ~40 ms above direct: the signature of Nagle's
    algorithm meeting delayed ACKs (a hop that writes a response in two segments on a socket
    without TCP_NODELAY), not of the path's own work."""
    base = paths["direct"]["small_p50_ms"]
    return [
        f"{name}: small-request p50 is {summary['small_p50_ms'] - base:.0f} ms above direct, the "
        "signature of Nagle's algorithm meeting delayed ACKs on one of its hops (a socket "
        "without TCP_NODELAY writing a response in two segments)"
        for name, summary in paths.items()
        if "small_p50_ms" in summary and summary["small_p50_ms"] - base > NAGLE_SUSPECT_MS
    ]


# --- the run -----------------------------------------------------------------------------------


def merged(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One path's worker results of several rounds as one: bytes and seconds add up (the
    download rate is over all rounds), latencies are pooled, CPU seconds add up."""

    def added(key: str) -> dict[str, float]:
        total: dict[str, float] = {}
        for result in rounds:
            for name, seconds in result[key].items():
                total[name] = total.get(name, 0.0) + seconds
        return total

    return {
        "bytes": sum(r["bytes"] for r in rounds),
        "download_seconds": sum(r["download_seconds"] for r in rounds),
        "latencies_ms": [ms for r in rounds for ms in r["latencies_ms"]],
        "cpu_seconds": sum(r["cpu_seconds"] for r in rounds),
        "cpu_download": added("cpu_download"),
        "cpu_small": added("cpu_small"),
        "cpu_other": added("cpu_other"),
    }


def _rate(result: dict[str, Any]) -> float:
    return float(result["bytes"] / result["download_seconds"])


def _totals(sessions: list[dict[str, Any]]) -> dict[str, int]:
    """What the trail recorded over all of a deployment's sessions (one per round)."""
    return {
        "sessions": len(sessions),
        "requests": sum(s["requests"] for s in sessions),
        "bytes_out": sum(s["bytes_out"] for s in sessions),
    }


def bench(size_mib: int, requests: int, rounds: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dbg-")))
        progress("starting moto (signature checks on) and the manager")
        moto = start_moto(REGION)
        stack.callback(moto.stop)
        creds = role_credentials(moto)
        manager = ManagerProcess(
            workdir / "manager",
            extra_env={
                "AWS_ACCESS_KEY_ID": moto.manager_key_id,
                "AWS_SECRET_ACCESS_KEY": moto.manager_secret,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            },
        ).start()
        stack.callback(manager.stop)
        admin = manager.client()
        group, name = unique("bench"), unique("acme")
        admin.create_group(group)
        registered = admin.post(
            "/v1/aws-deployments",
            json={
                "group": group,
                "name": name,
                "region": REGION,
                "role_arn": moto.role_arn,
                "endpoint_url": moto.url,
                "allowed_services": ["s3", "sts"],
            },
        )
        registered.raise_for_status()
        # Seeded after the registration: the manager loads boto3's data for the deployment's
        # first session when it is registered (a one-time ~0.5 s of CPU in a thread); seeding
        # gives it that time, as any deployment registered a while before its first session has.
        progress(f"seeding s3://{BUCKET}/{BIG_KEY} ({size_mib} MiB)")
        seed(moto, creds, size_mib, workdir)
        moto_pid, manager_pid = moto.process.pid, manager._proc.pid  # type: ignore[union-attr]

        env = base_env(requests)
        alien_env = {
            **env,
            "ALIEN_MANAGER_URL": manager.url,
            "ALIEN_TOKEN": manager.admin_key,
            "XDG_RUNTIME_DIR": str(workdir),
        }
        alien_prefix = [
            sys.executable, "-m", "alien.cli.main", "debug", f"{group}/{name}",
            "--reason", "benchmark", "--",
        ]  # fmt: skip
        progress("set-up time: a command that prints the time, plain and through alien debug")
        plain_start = launch_to_start([], env)
        push_start = launch_to_start(alien_prefix, alien_env)
        cli_start = cli_start_seconds()
        pulled = start_agent(manager, moto, workdir / "pull", pull_config(moto))
        stack.callback(pulled.agent.stop)
        pull_prefix = [*alien_prefix[:4], pulled.ref, *alien_prefix[5:]]
        pull_start = launch_to_start(pull_prefix, alien_env)
        no_websocket = NoWebSocketProxy(int(manager.url.rsplit(":", 1)[1])).start()
        stack.callback(no_websocket.close)
        polling = start_agent(
            manager,
            moto,
            workdir / "poll",
            pull_config(moto),
            transport="auto",
            manager_url=no_websocket.url,
        )
        stack.callback(polling.agent.stop)
        http_leg_prefix = [*alien_prefix[:4], polling.ref, *alien_prefix[5:]]
        forward_port = start_ssh_forward(stack, workdir, int(moto.url.rsplit(":", 1)[1]))

        direct_env = {**env, **creds, "AWS_ENDPOINT_URL": moto.url}
        pull_watch = {"moto": moto_pid, "manager": manager_pid, "agent": pulled.agent.pid}
        runs: dict[str, tuple[list[str], dict[str, str], dict[str, int]]] = {
            "direct": (WORKER_ARGV, direct_env, {"moto": moto_pid}),
            "alien_debug": (
                [*alien_prefix, *WORKER_ARGV],
                alien_env,
                {"moto": moto_pid, "manager": manager_pid},
            ),
            "alien_debug_pull": ([*pull_prefix, *WORKER_ARGV], alien_env, pull_watch),
            "alien_debug_pull_http": (
                [*http_leg_prefix, *WORKER_ARGV],
                alien_env,
                {**pull_watch, "agent": polling.agent.pid},
            ),
        }
        if forward_port is not None:
            ssh_url = f"http://127.0.0.1:{forward_port}"
            runs["ssh_forward"] = (
                WORKER_ARGV, {**direct_env, "AWS_ENDPOINT_URL": ssh_url}, {"moto": moto_pid}
            )  # fmt: skip
        raw: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
        for round_no in range(rounds):
            for path, (argv, path_env, watch) in runs.items():
                progress(f"round {round_no + 1}/{rounds}: {path}")
                share = {"BENCH_REQUESTS": str(max(1, requests // rounds))}
                raw[path].append(run_path(argv, {**path_env, **share}, watch))
        paths: dict[str, dict[str, Any]] = {path: summary(merged(raw[path])) for path in runs}
        if forward_port is None:
            paths["ssh_forward"] = {"skipped": "sshd could not be installed"}
        per_round = [
            round(_rate(ours) / _rate(base), 3)
            for ours, base in zip(raw["alien_debug"], raw["direct"], strict=True)
        ]
        audited = admin.get("/v1/debug-sessions", params={"deployment": f"{group}/{name}"})
        session = _totals(audited.json()["items"])
        pull_audited = admin.get("/v1/debug-sessions", params={"deployment": pulled.ref})
        pull_session = _totals(pull_audited.json()["items"])

    setup = push_start - plain_start
    pull_setup = pull_start - plain_start
    ours, theirs, base = paths["alien_debug"], paths["alien_debug_pull"], paths["direct"]
    polled = paths["alien_debug_pull_http"]
    ratios: dict[str, Any] = {
        "download_alien_vs_direct": _ratio(ours, base),
        "download_alien_vs_direct_per_round": per_round,
        "p50_added_ms_alien": round(ours["small_p50_ms"] - base["small_p50_ms"], 3),
        "download_pull_vs_direct": _ratio(theirs, base),
        "download_pull_vs_push": _ratio(theirs, ours),
        "p50_added_ms_pull": round(theirs["small_p50_ms"] - base["small_p50_ms"], 3),
        "p50_added_ms_pull_vs_push": round(theirs["small_p50_ms"] - ours["small_p50_ms"], 3),
        "download_pull_http_vs_direct": _ratio(polled, base),
        "download_pull_http_vs_pull": _ratio(polled, theirs),
        "p50_added_ms_pull_http": round(polled["small_p50_ms"] - base["small_p50_ms"], 3),
    }
    ssh_summary = paths["ssh_forward"]
    if "skipped" not in ssh_summary:
        ratios |= {
            "download_alien_vs_ssh": _ratio(ours, ssh_summary),
            "download_pull_vs_ssh": _ratio(theirs, ssh_summary),
            "p50_added_ms_ssh": round(ssh_summary["small_p50_ms"] - base["small_p50_ms"], 3),
        }
    return {
        "benchmark": "debug_tunnel (push and pull model)",
        "notes": diagnose(paths),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            # 1/5/15-minute load averages at the start and the end: the machine is shared, and
            # a load above the core count means the paths competed with other work.
            "load_average_start": [round(x, 2) for x in load_before],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        },
        "workload": {
            "download_mib": size_mib,
            "small_requests": requests,
            "small_bytes": 1024,
            "rounds": rounds,
        },
        "paths": paths,
        "ratios": ratios,
        "session_setup_seconds": round(setup, 3),
        "pull_session_setup_seconds": round(pull_setup, 3),
        "setup_parts": {
            "alien_cli_start_seconds": round(cli_start, 3),
            "push_session_seconds": round(setup - cli_start, 3),
            "pull_session_seconds": round(pull_setup - cli_start, 3),
        },
        "alien_debug_launch_to_command_seconds": round(push_start, 3),
        "audited": session,
        "pull_audited": pull_session,
    }


SETUP_RUNS = 3
CLOCK_ARGV = [sys.executable, "-c", "import time; print(time.time())"]


def launch_to_start(prefix: list[str], env: dict[str, str]) -> float:
    """Seconds from launching ``prefix`` + a command that prints the time to that time (the
    fastest of three runs)."""
    samples = []
    for _ in range(SETUP_RUNS):
        launched = time.time()
        done = subprocess.run(
            [*prefix, *CLOCK_ARGV], env=env, capture_output=True, text=True, check=True
        )
        samples.append(float(done.stdout.strip().splitlines()[-1]) - launched)
    return min(samples)


def cli_start_seconds() -> float:
    """Wall time of ``import alien.cli.main`` as ``alien debug`` runs it (only the ``debug``
    group is loaded) in a fresh interpreter, less a bare one (the fastest of three each): the
    part of the set-up time that is the CLI's start."""

    def run(code: str) -> float:
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - begin

    bare = min(run("pass") for _ in range(SETUP_RUNS))
    as_debug = "import sys; sys.argv = ['alien', 'debug']; import alien.cli.main"
    return min(run(as_debug) for _ in range(SETUP_RUNS)) - bare


def _ratio(ours: dict[str, Any], base: dict[str, Any]) -> float:
    return round(ours["download_mib_per_s"] / base["download_mib_per_s"], 3)


def pull_config(moto: MotoServer) -> dict[str, Any]:
    """The agent's ``debug.json``: AWS through the deployment's role, nothing else."""
    return {
        "aws": {
            "region": REGION,
            "allowed_services": ["s3", "sts"],
            "role_arn": moto.role_arn,
            "endpoint_url": moto.url,
        }
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the paths")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    print(json.dumps(bench(args.size_mib, args.requests, args.rounds), indent=2))


if __name__ == "__main__":
    main()
