"""Run the manager under uvicorn (what ``alien serve`` does).

The socket is bound here, before uvicorn starts, so ``port=0`` works (the OS picks a free port)
and the real port is known. Two lines go to stdout, each in a stable, parseable form — the admin
key on a fresh manager (``alien manager admin key: ax_key_…``, printed this once and never
logged) and, once the server accepts connections, ``alien manager listening on http://H:P``.
All logging (uvicorn's included) goes to stderr, so stdout carries nothing else, and every
handler redacts (:class:`alien.redaction.RedactingFilter`): tokens the manager issued or accepted,
the configured secrets (admin key, database password) and anything secret-shaped are masked
before a line is written. Libraries' warnings (root logger) go through the same handler.

A start that cannot work fails with one :class:`AlienError` naming the option to blame (the CLI
prints it as one line), as early as it can be told: :func:`check_start_up` looks at everything
that can be checked without the database, and the socket is bound before the database is opened.
The admin key is created only once the server is up (:func:`_first_admin_key`), so a failed
start never prints, nor stores, a key that nobody could then read.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import uvicorn
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError

from alien.errors import AlienError, ValidationError
from alien.gc_tuning import collect_less, freeze_start_up
from alien.malloc_tuning import keep_freed_memory
from alien.manager.app import create_app
from alien.manager.core import ManagerCore, open_core
from alien.manager.db import psycopg_url
from alien.manager.services.keys import ensure_admin_key
from alien.manager.serving_lock import ServingLock, ServingLockLost, acquire, serving_lock
from alien.manager.settings import ManagerSettings
from alien.redaction import (
    DEFAULT_LOGGERS,
    RedactingFilter,
    add_secret,
    install_logging_redaction,
)
from alien.serving import CoalescingHttp

LISTENING_PREFIX = "alien manager listening on "
ADMIN_KEY_PREFIX = "alien manager admin key: "
GRACEFUL_SHUTDOWN_SECONDS = 3
WS_PING_SECONDS = 20.0
LOCK_CHECK_SECONDS = 2.0
SUPPORTED_DATABASES = ("sqlite", "postgresql")


class DatabaseUnavailable(AlienError):
    """The database cannot be reached or opened at start-up (the driver says why)."""

    code = "DATABASE_UNAVAILABLE"


class CannotListen(AlienError):
    """The address to serve on cannot be bound (in use, not this machine's, not allowed)."""

    code = "CANNOT_LISTEN"


class StartUpFailed(AlienError):
    """The application's own start-up failed (uvicorn logged why, with the traceback)."""

    code = "START_UP_FAILED"


def check_start_up(settings: ManagerSettings, *, host: str, port: int, log_level: str) -> str:
    """Refuse a start that cannot work, naming the option to blame; the database URL to use.

    Run before the serving lock, the database and the admin key: a typo must not cost the
    operator anything (nor wait for another manager to stop, with ``--standby``). Only the
    port's availability and the database's reachability are left to be found out later.
    """
    check_log_level(log_level)
    url = check_database_url(settings.resolved_database_url())
    check_data_dir(settings.data_dir)
    resolve(host, port)
    return url


def check_log_level(level: str) -> None:
    if level.lower() not in uvicorn.config.LOG_LEVELS:
        known = ", ".join(uvicorn.config.LOG_LEVELS)
        raise ValidationError(
            f"unknown log level {level!r}: use one of {known}", field="--log-level"
        )


def check_database_url(database_url: str) -> str:
    """``database_url`` if alien can open it: SQLite (a file) or PostgreSQL, with its driver
    installed. Only the URL is looked at: whether the database answers is found out later."""
    expected = "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
    try:
        url = make_url(psycopg_url(database_url))
    except ArgumentError:  # the URL is not shown: it may hold a password
        raise ValidationError(
            f"the database URL is not a URL: {expected}", field="--database-url"
        ) from None
    if url.get_backend_name() not in SUPPORTED_DATABASES:
        raise ValidationError(
            f"unsupported database {_shown(url)}: {expected}", field="--database-url"
        )
    try:
        url.get_dialect().import_dbapi()
    except (ArgumentError, ImportError) as exc:  # an unknown or missing driver
        raise ValidationError(
            f"cannot use the database {_shown(url)} ({exc}): {expected}", field="--database-url"
        ) from None
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValidationError(
            f"a SQLite manager database is a file, not {_shown(url)}: {expected}",
            field="--database-url",
        )
    return database_url


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def check_data_dir(data_dir: Path) -> None:
    """Create the data dir if needed (the manager would anyway) and check it can be written."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"cannot use the data dir {data_dir}: {exc.strerror or exc}", field="--data-dir"
        ) from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ValidationError(
            f"cannot use the data dir {data_dir}: not writable", field="--data-dir"
        )


def resolve(host: str, port: int) -> tuple[Any, ...]:
    """``socket.getaddrinfo``'s first answer for ``host:port``, as a one-line error if none."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValidationError(f"cannot listen on host {host!r}: {reason}", field="--host") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``port`` 0: any free port), or
    :class:`CannotListen` naming the option to blame."""
    family, kind, proto, _, address = resolve(host, port)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        blamed = "--host" if exc.errno == errno.EADDRNOTAVAIL else "--port"
        shown = f"[{host}]" if ":" in host else host
        raise CannotListen(
            f"cannot listen on {shown}:{port}: {exc.strerror or exc}", field=blamed
        ) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """A uvicorn server that runs ``on_started`` and announces its URL once it accepts
    connections, and stops if its lock on the database is lost (PostgreSQL; checked on a
    thread: a stalled database must not stall the event loop).

    ``on_started`` (the first admin key, :func:`_first_admin_key`) runs before any request is
    handled: it is synchronous, on the event loop. If it raises, the server stops cleanly and
    the error is kept in ``failure`` for the caller to raise. ``on_stopping`` runs when it
    starts to stop, before uvicorn waits for open requests (``ManagerCore.stopping``).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        announce: str,
        out: TextIO,
        lock: ServingLock,
        on_started: Callable[[], None] | None = None,
        on_stopping: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self._on_stopping = on_stopping
        self._announce = announce
        self._out = out
        self._lock = lock
        self._on_started = on_started
        self.lock_lost = False
        self.failure: Exception | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started:
            return
        try:
            if self._on_started is not None:
                self._on_started()
        except Exception as exc:  # raised by the caller once uvicorn has shut down
            self.failure = exc
            self.should_exit = True
            return
        freeze_start_up()  # the app is built and its lifespan has run
        if self._lock.can_be_lost:
            threading.Thread(target=self._watch_lock, name="serving lock", daemon=True).start()
        print(self._announce, file=self._out, flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._on_stopping is not None:
            self._on_stopping()  # open long-polls answer before uvicorn waits for them
        await super().shutdown(sockets=sockets)

    def _watch_lock(self) -> None:
        while not self.should_exit:
            if not self._lock.held():
                self.lock_lost = True
                self.should_exit = True
                return
            time.sleep(LOCK_CHECK_SECONDS)


class _DeniedHandshakeFilter(logging.Filter):
    """Drop uvicorn's false alarm after a refused WebSocket handshake.

    A handshake refused with a JSON 401/403 (the ASGI denial-response extension) is complete and
    correct, but uvicorn's sans-I/O WebSocket protocol still logs "ASGI callable returned without
    completing handshake." at ERROR for it; an ERROR per rejected token would drown real ones.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, to stderr, with redaction on every handler: the filters sit in the
    very config uvicorn applies, so no handler it creates can come up without them."""
    config: dict[str, Any] = {**uvicorn.config.LOGGING_CONFIG}
    config["filters"] = {
        "denied_handshake": {"()": _DeniedHandshakeFilter},
        "redact": {"()": RedactingFilter},
    }
    config["handlers"] = {
        name: {**handler, "stream": "ext://sys.stderr", "filters": ["denied_handshake", "redact"]}
        for name, handler in uvicorn.config.LOGGING_CONFIG["handlers"].items()
    }
    config["loggers"] = {
        **uvicorn.config.LOGGING_CONFIG["loggers"],
        "alien": {"handlers": ["default"], "level": level.upper(), "propagate": False},
    }
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config


def register_secrets(settings: ManagerSettings) -> None:
    """Tell the process redactor about the secrets the manager was configured with."""
    if settings.admin_key:
        add_secret(settings.admin_key)
    if settings.database_url:
        password = make_url(settings.database_url).password
        if password:
            add_secret(str(password))


def serve(
    settings: ManagerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
    out: TextIO = sys.stdout,
    standby: bool = False,
) -> None:
    """Check the options (:func:`check_start_up`), take the database's serving lock
    (:mod:`alien.manager.serving_lock`; ``standby``: wait for it), bind the socket, open (and
    migrate) the database and install ``ALIEN_ADMIN_KEY`` if given, then serve until stopped —
    or until the lock is lost, which raises :class:`ServingLockLost`.

    The socket is bound after the lock, so a standby on the same port waits for the port with
    the database; and before the database is opened, so a port in use is refused before the
    schema is touched. A generated admin key is created and printed only once the server is up.
    """
    keep_freed_memory()
    collect_less()
    url = check_start_up(settings, host=host, port=port, log_level=log_level)
    register_secrets(settings)
    lock = serving_lock(url)
    with _reaching(url):
        acquire(lock, standby=standby, on_wait=_waiting)
    try:
        sock = bind(host, port)
        try:
            with _reaching(url):
                core = open_core(settings)
                if settings.admin_key:
                    ensure_admin_key(core.db, settings.admin_key)
            _serve_locked(settings, core, lock, sock, log_level=log_level, out=out)
        finally:
            sock.close()
    finally:
        lock.release()


def _first_admin_key(core: ManagerCore, database_url: str, out: TextIO) -> Callable[[], None]:
    """Create and print the first admin key of a fresh manager, once it serves.

    Why not before: the key's secret is printed once and only its hash is stored, so a key
    created by a start that then failed (the app's own start-up, say) would be stored but
    its print lost among the failure's output, and the next start, seeing a key, would print
    none — an admin key nobody holds. Created here, a failed start leaves no key behind and
    the next good start prints one. With ``ALIEN_ADMIN_KEY`` this is never called.
    """

    def create() -> None:
        with _reaching(database_url):
            new_key = ensure_admin_key(core.db, None)
        if new_key is not None:
            print(f"{ADMIN_KEY_PREFIX}{new_key}", file=out, flush=True)

    return create


@contextmanager
def _reaching(database_url: str) -> Iterator[None]:
    """A database that cannot be reached or opened (a file that is no database, say) is a
    one-line error, not a driver traceback."""
    try:
        yield
    except DatabaseError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        shown = make_url(database_url).render_as_string(hide_password=True)
        raise DatabaseUnavailable(
            f"cannot use the database {shown}: {reason}", field="database"
        ) from None


def _waiting(holder: str) -> None:
    print(
        f"alien manager standing by: another manager serves this database ({holder})",
        file=sys.stderr,
        flush=True,
    )


def _serve_locked(
    settings: ManagerSettings,
    core: ManagerCore,
    lock: ServingLock,
    sock: socket.socket,
    *,
    log_level: str,
    out: TextIO,
) -> None:
    config = uvicorn.Config(
        create_app(settings, core=core),
        log_config=log_config(log_level),
        log_level=log_level,
        ws_ping_interval=WS_PING_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        http=CoalescingHttp,  # a response's head and body in one send
    )
    # uvicorn applied its logging config just now; cover the loggers' own filters too (records
    # logged on them directly), idempotently.
    install_logging_redaction(loggers=(*DEFAULT_LOGGERS, "alien"))
    logging.getLogger("alien.manager").info("manager data dir: %s", settings.data_dir)
    first_key = None if settings.admin_key else _first_admin_key(core, core.db.url, out)
    server = _Server(
        config, f"{LISTENING_PREFIX}{url_of(sock)}", out, lock, first_key, core.stopping
    )
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn's way to say the app's start-up (lifespan) failed
        if server.started:
            raise
        raise StartUpFailed("the manager's start-up failed (the log above says why)") from None
    if server.failure is not None:
        raise server.failure
    if server.lock_lost:
        raise ServingLockLost(
            "lost the lock on the database (its connection broke): stopped serving, as another "
            "manager may have taken over",
            field="database",
        )
