"""Building a release package from a code directory holding a named pipe, a socket or a link
to one: refused in one line naming the path, never opened (opening a named pipe blocks)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from alien.client.package import PackageError, build_package
from alien.stack import load_stack

STACK = """\
import alien

api = alien.Function("api").code(src="api", entrypoint="app:app")
stack = alien.Stack("special-files").add(api, "live")
"""


def _app(root: Path) -> Path:
    (root / "api").mkdir(parents=True)
    (root / "api" / "app.py").write_text("async def app(scope, receive, send): ...\n")
    (root / "alien_stack.py").write_text(STACK)
    return root


def _refusal(app: Path, dest: Path, unblock: Callable[[], None]) -> PackageError:
    """The error ``build_package`` raises, from a thread: a regression hangs it, not the suite."""
    outcome: list[BaseException | None] = []

    def build() -> None:
        try:
            build_package(app, load_stack(app).manifest(), dest)
            outcome.append(None)
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():
        unblock()
        worker.join(5)
        pytest.fail("build_package blocked on a special file")
    assert outcome, "build_package ended without an outcome"
    assert isinstance(outcome[0], PackageError), outcome[0]
    return outcome[0]


def _open_writer(fifo: Path) -> Callable[[], None]:
    """Release a reader blocked opening ``fifo`` (a writer arriving ends its wait)."""

    def unblock() -> None:
        with contextlib.suppress(OSError):  # no reader waiting: nothing to release
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    return unblock


def test_a_named_pipe_is_refused_without_being_opened(tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    fifo = app / "api" / "ff"
    os.mkfifo(fifo)
    err = _refusal(app, tmp_path / "p.tar.gz", _open_writer(fifo))
    assert err.message == (
        "api/ff is a named pipe: a package holds only directories and regular files"
    )
    assert err.field == "path" and "\n" not in err.message


def test_a_socket_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(tmp_path / "app")
    monkeypatch.chdir(app / "api")  # a short relative name: socket paths are limited to ~100 bytes
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind("dev.sock")
        err = _refusal(app, tmp_path / "p.tar.gz", lambda: None)
    assert err.message == (
        "api/dev.sock is a socket: a package holds only directories and regular files"
    )


def test_a_link_to_a_named_pipe_inside_the_app_is_refused(tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    fifo = app / "pipe"
    os.mkfifo(fifo)
    (app / "api" / "data.txt").symlink_to(fifo)
    err = _refusal(app, tmp_path / "p.tar.gz", _open_writer(fifo))
    assert "api/data.txt is a symlink to a named pipe" in err.message


def test_a_dangling_link_is_refused_in_one_line(tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    (app / "api" / "gone.txt").symlink_to(app / "missing.txt")
    err = _refusal(app, tmp_path / "p.tar.gz", lambda: None)
    assert err.message.startswith("api/gone.txt is a symlink to ") and "does not exist" in (
        err.message
    )


def test_regular_files_and_links_to_them_still_build(tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    (app / "shared.py").write_text("X = 1\n")
    (app / "api" / "shared.py").symlink_to(app / "shared.py")
    info = build_package(app, load_stack(app).manifest(), tmp_path / "p.tar.gz")
    assert info.files == 2
