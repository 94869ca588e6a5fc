"""The function runtime: the process a platform starts for each function.

    python -m alien.sdk.runtime

Reads its configuration from the environment (``ALIEN_FUNCTION``, ``ALIEN_ENTRYPOINT``,
``ALIEN_TRIGGERS``, ``ALIEN_HTTP_ADDRESS``/``ALIEN_HTTP_TOKEN`` or else ``ALIEN_HOST``/
``ALIEN_PORT``, ``ALIEN_BINDINGS``, and with commands enabled ``ALIEN_CONTROL_ADDRESS``/
``ALIEN_CONTROL_TOKEN``), imports the entrypoint, serves the ASGI app with uvicorn, runs one loop
per trigger and serves the command control endpoint (``alien.sdk.runtime.control``). When
everything is up it prints one line on stdout that the platform waits for::

    alien-runtime: ready function=api http=unix:/…/http-9c1d.sock control=unix:/…/control-1f2e.sock

The app, and any process it spawns, has no business holding the keys to its own endpoints. The
local platform passes the tokens through an inherited pipe (``ALIEN_SECRETS_FD``, see
``alien.protocol.runtime_secrets``), read and closed before app code is imported, so they are in
no environment at all. Tokens given in the environment instead (a runtime started by hand) are
removed from ``os.environ`` before app code is imported, but ``/proc/<pid>/environ`` still shows
them to this user's processes, the function's children included.

SIGTERM (or SIGINT) starts a graceful stop: no new requests, messages or commands are taken,
in-flight requests, handlers and commands finish, the app's lifespan shutdown runs, and the
process exits 0. A second signal exits at once. If the parent process goes away the runtime
stops too, so a platform that was killed outright does not leave functions running with no one
to stop them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import traceback
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import uvloop

from alien.bindings.env import from_environ
from alien.errors import AlienError
from alien.gc_tuning import collect_less, freeze_start_up
from alien.malloc_tuning import keep_freed_memory
from alien.redaction import add_secret, install_logging_redaction, is_sensitive_key
from alien.sdk.registry import registry
from alien.sdk.runtime.address import ListenAddress
from alien.sdk.runtime.config import RuntimeConfig
from alien.sdk.runtime.control import ControlServer
from alien.sdk.runtime.http import HttpServer
from alien.sdk.runtime.http_guard import platform_only
from alien.sdk.runtime.loader import import_entrypoint
from alien.sdk.runtime.loops import pause
from alien.sdk.runtime.secrets_fd import read_secrets
from alien.sdk.runtime.wiring import build_loops

log = logging.getLogger("alien.runtime")

READY_PREFIX = "alien-runtime: ready"
PARENT_CHECK_INTERVAL = 1.0
_NOT_SECRETS = frozenset({"PWD", "OLDPWD"})
_TOKENS = ("ALIEN_HTTP_TOKEN", "ALIEN_CONTROL_TOKEN")


def ready_line(function: str, http: str | None, control: str | None = None) -> str:
    """The line the platform waits for (``platforms.local.process.READY_LINE`` parses it)."""
    line = f"{READY_PREFIX} function={function}"
    if http:
        line += f" http={http}"
    if control:
        line += f" control={control}"
    return line


def app_server(app: Any, config: RuntimeConfig) -> HttpServer:
    """The app's server: on the endpoint the platform granted, for callers holding its token;
    without one (no platform, or one that has no private endpoint), on ``ALIEN_HOST``/``PORT``."""
    if config.http is None:
        address = ListenAddress(host=config.host, port=config.port)
        return HttpServer(app, address, variable="ALIEN_PORT")
    guarded = platform_only(app, config.http.token)
    return HttpServer(guarded, config.http.address, variable="ALIEN_HTTP_ADDRESS")


async def _watch_parent(stopping: asyncio.Event, parent: int) -> None:
    while not await pause(stopping, PARENT_CHECK_INTERVAL):
        if os.getppid() != parent:
            log.warning("the platform process %d went away; stopping", parent)
            stopping.set()


def _install_signals(stopping: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stopping.is_set():
            log.warning("second %s: exiting now", sig.name)
            os._exit(128 + sig)
        log.info("%s received: finishing in-flight work, then exiting", sig.name)
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


async def run(config: RuntimeConfig) -> None:
    """Run the function until a stop signal (or the parent's exit); raises on bad start-up."""
    stopping = asyncio.Event()
    _install_signals(stopping)
    parent = os.getppid()
    for name in _TOKENS:
        os.environ.pop(name, None)
    app = import_entrypoint(config.entrypoint, config.code_dir)
    loops = build_loops(config.function, config.triggers, registry, from_environ())
    control = ControlServer(config.function, config.control) if config.control else None
    if config.commands_enabled and control is None:
        log.warning("commands are enabled but no ALIEN_CONTROL_ADDRESS is set: none can arrive")
    if app is None and not loops and control is None:
        raise AlienError(
            f"function {config.function} has nothing to run: {config.entrypoint} is not an app, "
            "nothing called alien.serve(), it has no triggers and no commands",
            field="ALIEN_ENTRYPOINT",
            code="NOTHING_TO_RUN",
        )
    # Long polls and sync handlers all run in worker threads: size the pool so a handful of
    # idle long polls can never starve the handlers (the default is only cpu_count + 4).
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=8 + 2 * len(loops), thread_name_prefix="alien")
    )
    server = app_server(app, config) if app is not None else None
    http = str(await server.start()) if server is not None else None
    control_address = await control.start() if control is not None else None
    freeze_start_up()  # the function's code is imported and its app built
    tasks = [asyncio.create_task(loop.run(stopping)) for loop in loops]
    watchdog = asyncio.create_task(_watch_parent(stopping, parent), name="parent-watch")
    triggers = ", ".join(t.label for t in config.triggers) or "none"
    log.info(
        "function %s ready: http %s, triggers %s, commands %s",
        config.function,
        http or "off",
        triggers,
        control_address or "off",
    )
    print(ready_line(config.function, http, control_address), flush=True)

    await stopping.wait()
    # Stop taking new work everywhere at once; each part finishes what it has in flight.
    stops = [*tasks, watchdog]
    if server is not None:
        stops.append(asyncio.create_task(server.stop(), name="http-stop"))
    if control is not None:
        stops.append(asyncio.create_task(control.stop(), name="control-stop"))
    await asyncio.gather(*stops)
    log.info("function %s stopped", config.function)


def register_environment_secrets(environ: Mapping[str, str]) -> None:
    """Register the values of secret-named variables (``DB_PASSWORD``, ``API_TOKEN``, the
    control token…) with the process redactor, before app code can quote them anywhere.
    ``PWD``/``OLDPWD`` are the shell's directories, not passwords."""
    for name, value in environ.items():
        if is_sensitive_key(name) and name not in _NOT_SECRETS:
            add_secret(value)


def main() -> None:
    keep_freed_memory()
    collect_less()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        environ = {**os.environ, **read_secrets(os.environ)}
        # Every log line of the function (its own, the runtime's, uvicorn's) is redacted: vault
        # values as they are read, secret environment variables and the tokens from the start.
        register_environment_secrets(environ)
        install_logging_redaction()
        config = RuntimeConfig.from_environ(environ)
        uvloop.run(run(config))  # a function's loop carries every request and command
    except AlienError as exc:
        where = f" ({exc.field})" if exc.field else ""
        print(f"alien-runtime: error: {exc.message}{where}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as exc:
        # Usually an error in app code at import time: show the app's part of the traceback.
        _print_app_traceback(exc, Path.cwd())
        print("alien-runtime: error: the function failed to start", file=sys.stderr, flush=True)
        sys.exit(1)


def _print_app_traceback(exc: BaseException, code_dir: Path) -> None:
    """The traceback without the runtime's and importlib's frames (a SyntaxError has none)."""
    trace = traceback.TracebackException.from_exception(exc)
    inside = str(code_dir)
    frames = [frame for frame in trace.stack if frame.filename.startswith(inside)]
    if frames:
        print("Traceback (most recent call last):", file=sys.stderr)
        print("".join(traceback.StackSummary.from_list(frames).format()), end="", file=sys.stderr)
    print("".join(trace.format_exception_only()), end="", file=sys.stderr, flush=True)
