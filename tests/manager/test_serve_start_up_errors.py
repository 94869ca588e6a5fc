"""``alien serve`` refuses a start that cannot work with one line naming the option to blame, a
non-zero exit and no traceback — and, on a fresh data dir, before any admin key is created or
printed (the key is shown once: a failed start must not be where it went). Real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from alien.manager.server import ADMIN_KEY_PREFIX

EXIT_TIMEOUT = 30.0


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def run_serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``alien serve --data-dir DATA_DIR --host 127.0.0.1 --port 0 ARGS`` (later flags win),
    with no ``ALIEN_*`` from the environment: a fresh manager would generate its admin key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIEN_")}
    cmd = [sys.executable, "-m", "alien.cli.main", "serve", "--data-dir", str(data_dir)]
    cmd += ["--host", "127.0.0.1", "--port", "0", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=EXIT_TIMEOUT, check=False
    )


def assert_refused(done: subprocess.CompletedProcess[str], option: str, reason: str) -> None:
    """One ``error: …`` line on stderr naming ``option``; no traceback, no admin key."""
    shown = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 1, shown
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, shown
    assert lines[0].startswith("error: ") and lines[0].endswith(f"({option})"), shown
    assert reason in lines[0], shown
    assert "Traceback" not in done.stderr, shown
    assert ADMIN_KEY_PREFIX not in done.stdout and "ax_key_" not in done.stdout, shown


def test_a_port_in_use_is_one_line_naming_port(tmp_path: Path, busy_port: int) -> None:
    data_dir = tmp_path / "data"
    done = run_serve(data_dir, "--port", str(busy_port))
    assert_refused(
        done, "--port", f"cannot listen on 127.0.0.1:{busy_port}: Address already in use"
    )
    assert not (data_dir / "manager.db").exists()  # refused before the database was created


@pytest.mark.parametrize(
    ("args", "option", "reason"),
    [
        (("--log-level", "bogus"), "--log-level", "unknown log level 'bogus'"),
        (("--database-url", "bogus://x"), "--database-url", "unsupported database bogus://x"),
        (("--database-url", "bogus"), "--database-url", "the database URL is not a URL"),
        (
            ("--database-url", "postgresql+nodriver://u:s3cret@h/db"),
            "--database-url",
            "cannot use the database postgresql+nodriver://u:***@h/db",
        ),
        (("--database-url", "sqlite://"), "--database-url", "a SQLite manager database is a file"),
        (("--host", "256.1.1.1"), "--host", "cannot listen on host '256.1.1.1'"),
    ],
    ids=["log-level", "url-scheme", "url-unparsable", "url-driver", "url-sqlite-memory", "host"],
)
def test_a_bad_option_is_one_line_naming_it_before_anything_is_created(
    tmp_path: Path, args: tuple[str, ...], option: str, reason: str
) -> None:
    data_dir = tmp_path / "data"
    done = run_serve(data_dir, *args)
    assert_refused(done, option, reason)
    assert "s3cret" not in done.stderr
    assert not data_dir.exists() or not any(data_dir.iterdir())  # no lock, no database


def test_an_unusable_data_dir_is_one_line_naming_it(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert_refused(run_serve(not_a_dir), "--data-dir", f"cannot use the data dir {not_a_dir}")
    assert_refused(
        run_serve(not_a_dir / "below"), "--data-dir", f"cannot use the data dir {not_a_dir}"
    )


def test_a_file_that_is_no_database_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "manager.db").write_text("not a database\n")
    assert_refused(run_serve(data_dir), "database", "file is not a database")
