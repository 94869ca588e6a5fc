"""Run the manager under uvicorn (what ``alien serve`` does).

The socket is bound here, before uvicorn starts, so ``port=0`` works (the OS picks a free port)
and the real port is known. Two lines go to stdout, each in a stable, parseable form — the admin
key on a fresh manager (``alien manager admin key: ax_key_…``, printed this once and never
logged) and, once the server accepts connections, ``alien manager listening on http://H:P``.
All logging (uvicorn's included) goes to stderr, so stdout carries nothing else, and every
handler redacts (:class:`alien.redaction.RedactingFilter`): tokens the manager issued or accepted,
the configured secrets (admin key, database password) and anything secret-shaped are masked
before a line is written. Libraries' warnings (root logger) go through the same handler.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from alien.errors import AlienError
from alien.gc_tuning import collect_less, freeze_start_up
from alien.malloc_tuning import keep_freed_memory
from alien.manager.app import create_app
from alien.manager.core import ManagerCore, open_core
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


class DatabaseUnavailable(AlienError):
    """The database cannot be reached or opened at start-up (the driver says why)."""

    code = "DATABASE_UNAVAILABLE"


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``port`` 0: any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """A uvicorn server that announces its URL once it accepts connections, and stops if its
    lock on the database is lost (PostgreSQL; checked on a thread: a stalled database must not
    stall the event loop)."""

    def __init__(
        self, config: uvicorn.Config, announce: str, out: TextIO, lock: ServingLock
    ) -> None:
        super().__init__(config)
        self._announce = announce
        self._out = out
        self._lock = lock
        self.lock_lost = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            freeze_start_up()  # the app is built and its lifespan has run
            if self._lock.can_be_lost:
                threading.Thread(target=self._watch_lock, name="serving lock", daemon=True).start()
            print(self._announce, file=self._out, flush=True)

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
    """Take the database's serving lock (:mod:`alien.manager.serving_lock`; ``standby``: wait
    for it), open (and migrate) the database, create the first admin key if needed, then serve
    until stopped — or until the lock is lost, which raises :class:`ServingLockLost`."""
    keep_freed_memory()
    collect_less()
    register_secrets(settings)
    url = settings.resolved_database_url()
    lock = serving_lock(url)
    with _reaching(url):
        acquire(lock, standby=standby, on_wait=_waiting)
    try:
        with _reaching(url):
            core = open_core(settings)
            new_key = ensure_admin_key(core.db, settings.admin_key)
        if new_key is not None:
            print(f"{ADMIN_KEY_PREFIX}{new_key}", file=out, flush=True)
        _serve_locked(settings, core, lock, host=host, port=port, log_level=log_level, out=out)
    finally:
        lock.release()


@contextmanager
def _reaching(database_url: str) -> Iterator[None]:
    """A database that cannot be reached is a one-line error, not a driver traceback."""
    try:
        yield
    except OperationalError as exc:
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
    *,
    host: str,
    port: int,
    log_level: str,
    out: TextIO,
) -> None:
    sock = bind(host, port)
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
    server = _Server(config, f"{LISTENING_PREFIX}{url_of(sock)}", out, lock)
    server.run(sockets=[sock])
    if server.lock_lost:
        raise ServingLockLost(
            "lost the lock on the database (its connection broke): stopped serving, as another "
            "manager may have taken over",
            field="database",
        )
