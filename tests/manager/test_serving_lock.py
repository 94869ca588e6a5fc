"""One manager serves a database at a time (``alien.manager.serving_lock``), with real
``alien serve`` processes on SQLite and PostgreSQL: a second manager is refused with a one-line
reason naming the first, ``--standby`` waits and takes over (same data, same admin key) when the
first is killed, and a manager whose PostgreSQL lock connection is cut stops serving."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from alien.manager.serving_lock import ManagerAlreadyServing, acquire
from support.databases import DATABASES, database_for
from support.manager import ManagerProcess

# Processes killed, restarted or replaced on purpose: the slow step (`scripts/test -m slow`),
# which CI runs after the default suite.
pytestmark = pytest.mark.slow

EXIT_TIMEOUT = 30.0


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    with database_for(request.param) as url:
        yield url


@pytest.fixture
def serving(tmp_path: Path, database: str | None) -> Iterator[ManagerProcess]:
    manager = ManagerProcess(tmp_path / "first", database_url=database).start()
    yield manager
    manager.stop()


def _second(serving: ManagerProcess, root: Path, *, standby: bool = False) -> ManagerProcess:
    """Another manager on ``serving``'s database and data dir (and admin key)."""
    other = ManagerProcess(
        root, database_url=serving.database_url, data_dir=serving.data_dir, standby=standby
    )
    other.admin_key = serving.admin_key
    return other


def test_a_second_manager_is_refused_and_names_the_first(
    serving: ManagerProcess, tmp_path: Path
) -> None:
    second = _second(serving, tmp_path / "second")
    second.launch()
    assert second.wait_exit(EXIT_TIMEOUT) != 0
    lines = [line for line in second.log().splitlines() if line.strip()]
    assert lines[-1].startswith("error: another manager serves this database (alien manager ")
    assert f"alien manager {serving.pid}@" in lines[-1]
    assert "--standby" in lines[-1]
    with serving.client() as admin:  # the first one never noticed
        assert admin.get("/v1/groups").status_code == 200


def test_a_standby_takes_over_when_the_serving_manager_dies(
    serving: ManagerProcess, tmp_path: Path
) -> None:
    with serving.client() as admin:
        assert admin.post("/v1/groups", json={"name": "before-takeover"}).status_code == 201
    standby = _second(serving, tmp_path / "standby", standby=True)
    standby.launch()
    try:
        _wait_for(lambda: "standing by: another manager serves" in standby.log(), standby)
        time.sleep(1.0)
        assert standby.running and not standby.url  # still waiting, not serving
        serving.kill()
        standby.wait_started()
        with standby.client() as admin:
            names = [group["name"] for group in admin.get("/v1/groups").json()["items"]]
            assert "before-takeover" in names
    finally:
        standby.stop()


@pytest.mark.postgres
def test_a_manager_whose_lock_connection_is_cut_stops_serving(tmp_path: Path) -> None:
    with database_for("postgres") as url:
        assert url is not None
        manager = ManagerProcess(tmp_path / "m", database_url=url).start()
        try:
            conninfo = url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(conninfo, autocommit=True) as conn:
                cut = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (f"alien manager {manager.pid}@{socket.gethostname()}"[:63],),
                ).fetchall()
            assert cut == [(True,)]
            assert manager.wait_exit(EXIT_TIMEOUT) != 0
            assert "error: lost the lock on the database" in manager.log()
        finally:
            manager.stop()


def test_an_unreachable_database_is_a_one_line_error_without_its_password(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://alien:s3cret-pw@127.0.0.1:{port}/alien"
    done = subprocess.run(
        [sys.executable, "-m", "alien.cli.main", "serve", "--data-dir", str(tmp_path / "d"),
         "--port", "0", "--database-url", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        f"error: cannot use the database postgresql+psycopg://alien:***@127.0.0.1:{port}/alien: "
    )
    assert "s3cret-pw" not in done.stderr + done.stdout


# --- acquire(): the waiting rules, with a lock double --------------------------------------------


class _Lock:
    def __init__(self, free_after: int) -> None:
        self.free_after = free_after
        self.tries = 0

    def try_acquire(self) -> bool:
        self.tries += 1
        return self.tries > self.free_after

    def holder(self) -> str:
        return "alien manager 1@elsewhere"


def test_a_lock_freed_within_the_grace_is_taken_without_complaint() -> None:
    lock = _Lock(free_after=2)
    acquire(lock, grace=5.0)  # type: ignore[arg-type]
    assert lock.tries == 3


def test_a_lock_still_held_after_the_grace_is_refused_with_its_holder() -> None:
    with pytest.raises(ManagerAlreadyServing) as refused:
        acquire(_Lock(free_after=10**9), grace=0.3)  # type: ignore[arg-type]
    assert "(alien manager 1@elsewhere)" in refused.value.message
    assert refused.value.code == "MANAGER_ALREADY_SERVING"


def test_a_standby_waits_and_says_once_for_whom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("alien.manager.serving_lock.STANDBY_POLL_SECONDS", 0.01)
    lock, told = _Lock(free_after=30), []
    acquire(lock, standby=True, grace=0.0, on_wait=told.append)  # type: ignore[arg-type]
    assert told == ["alien manager 1@elsewhere"] and lock.tries == 31


def _wait_for(
    condition: Callable[[], bool], manager: ManagerProcess, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; its log:\n{manager.log()}")
        time.sleep(0.05)
