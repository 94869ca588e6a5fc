"""``alien dev``: run the stack locally and reload on change; ``alien dev secret set``/``command``.

Output is made to be read by people and by scripts alike. Each public function's URL is printed
on its own line as ``alien dev: <function> → <url>`` (with ``--json``: one JSON object per line,
``{"event": "ready", "urls": {...}, ...}``); function output follows, prefixed ``[function]``.
Ctrl-C (SIGINT) or SIGTERM stops every function gracefully before the command exits.

``alien dev command <name> --params '{...}'`` runs a remote-command handler in the running session
and prints its result (JSON pretty-printed, a string as is, bytes raw); a failure is one line on
stderr, ``<CODE>: <message>``, and exit code 1. ``--json`` prints ``{"ok", "function",
"command_id", "result" | "error"}`` instead, on failure too.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from alien.cli.output import console, fail, print_json, reporting_errors
from alien.errors import PlatformError, ValidationError
from alien.platforms.dispatch import Invocation
from alien.platforms.local.dev import DevEvent, DevSession, Reporter, invoke_command, set_secret
from alien.platforms.local.ingress import PortInUse
from alien.sdk.command_results import decode_result
from alien.stack.loader import find_stack_file

dev_app = typer.Typer(
    name="dev",
    help="Run the stack locally (in .alien/dev/), reloading on every change.",
    invoke_without_command=True,
)
secret_app = typer.Typer(
    name="secret", help="Secrets of the local dev vaults.", no_args_is_help=True
)
dev_app.add_typer(secret_app)

PathOption = Annotated[
    Path | None,
    typer.Option(
        "--path", help="App directory (holding alien_stack.py); default: the current one."
    ),
]


def _app_dir(path: Path | None) -> Path:
    return find_stack_file(path).parent


def _human(event: DevEvent) -> None:
    out = sys.stdout
    if event.kind == "failed":
        first, *rest = (event.message or "").splitlines()
        out.write(f"alien dev: {event.release} failed: {first}\n")
        out.writelines(f"    {line}\n" for line in rest)
        out.write("alien dev: the previous version (if any) keeps running; waiting for changes\n")
    else:
        verb = "ready" if event.kind == "ready" else "reloaded"
        out.write(f"alien dev: {verb} ({event.release}, {event.seconds}s)\n")
        for function, url in sorted((event.urls or {}).items()):
            out.write(f"alien dev: {function} → {url}\n")
        if event.message:
            out.write(f"alien dev: warning: {event.message}\n")
    out.flush()


def _busy_port_is_fatal(report: Reporter) -> Reporter:
    """``report``, except that a first start failing on a port in use ends the run.

    Later failures leave the previous version running until a change fixes them, but no edit
    frees a port another process holds: waiting would run nothing, forever. The session reports
    a failure while handling its cause, so the cause is the exception in flight; raising here
    ends the session (which stops what it started) and ``reporting_errors`` prints one line.
    """
    first = True

    def reporting(event: DevEvent) -> None:
        nonlocal first
        starting, first = first, False
        cause = sys.exception()
        if starting and event.kind == "failed" and isinstance(cause, PortInUse):
            raise PlatformError(cause.message, field="--port") from None
        report(event)

    return reporting


def _json(event: DevEvent) -> None:
    data = {k: v for k, v in vars(event).items() if v is not None}
    data["event"] = data.pop("kind")
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()


def _echo(function: str, line: str) -> None:
    sys.stdout.write(f"[{function}] {line}\n")
    sys.stdout.flush()


async def _run(session: DevSession) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(session.run(stop))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({runner, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()  # the watcher ends on its own; the session then stops every function
    stopped.cancel()
    await runner


@dev_app.callback()
def dev(
    ctx: typer.Context,
    path: PathOption = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=1, max=65535, help="Ingress port of the first public function (next: +1)."
        ),
    ] = None,
    logs: Annotated[
        bool,
        typer.Option("--logs/--no-logs", help="Echo function output (always in .alien/dev/logs)."),
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per event line.")
    ] = False,
) -> None:
    """Run the stack in the current directory locally; reload on every change."""
    if ctx.invoked_subcommand is not None:
        return
    with reporting_errors():
        session = DevSession(
            _app_dir(path),
            report=_busy_port_is_fatal(_json if as_json else _human),
            sink=_echo if logs else None,
            port=port,
        )
        asyncio.run(_run(session))
    if as_json:
        _json(DevEvent("stopped"))
    else:
        console.print("alien dev: stopped", highlight=False)


@secret_app.command("set")
def secret_set(
    vault: Annotated[str, typer.Argument(help="The vault's id in the stack.")],
    name: Annotated[str, typer.Argument(help="The secret's name.")],
    path: PathOption = None,
) -> None:
    """Set a secret in a local dev vault; the value is read from stdin (never from arguments)."""
    with reporting_errors():
        if sys.stdin.isatty():
            value = getpass.getpass(f"value of {name}: ")
        else:
            value = sys.stdin.read()
            value = value[:-1] if value.endswith("\n") else value  # `echo` adds one
        if not value:
            raise ValidationError("the secret value is empty (pipe it on stdin)", field="value")
        set_secret(_app_dir(path), vault, name, value)
    sys.stdout.write(f"alien dev: secret {name!r} set in vault {vault!r}\n")


def _params(text: str) -> dict[str, Any]:
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"--params is not JSON: {exc.msg}", field="params") from None
    if not isinstance(params, dict):
        raise ValidationError("--params must be a JSON object", field="params")
    return params


def _outcome(invocation: Invocation) -> tuple[bool, Any]:
    """(ok, result JSON or error object); a large result's document is the result itself."""
    if invocation.document is not None:
        return True, json.loads(invocation.document)
    response = invocation.response
    assert response is not None
    if response.ok:
        return True, response.result
    assert response.error is not None
    return False, response.error.model_dump(mode="json")


def _print_result(result: Any) -> None:
    value = decode_result(result)
    if isinstance(value, bytes):
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
    elif isinstance(value, str):
        sys.stdout.write(value + "\n")
    else:
        sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@dev_app.command("command")
def command(
    name: Annotated[str, typer.Argument(help="The command's name (@alien.command(name)).")],
    params: Annotated[str, typer.Option("--params", help="The params, a JSON object.")] = "{}",
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="The function to run it in (default: the one with commands)."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds before the handler is stopped.")
    ] = 300.0,
    path: PathOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Run a command handler in the running `alien dev` session and print its result."""
    with reporting_errors():
        try:
            function, invocation = asyncio.run(
                invoke_command(
                    _app_dir(path), name, _params(params), target=target, timeout=timeout
                )
            )
        except KeyboardInterrupt:
            fail("interrupted: the command was cancelled", code=130)
    ok, outcome = _outcome(invocation)
    if as_json:
        key = "result" if ok else "error"
        print_json(
            {"ok": ok, "function": function, "command_id": invocation.command_id, key: outcome}
        )
        if not ok:
            raise typer.Exit(1)
    elif ok:
        _print_result(outcome)
    else:
        reason = str(outcome["message"]).partition("\n")[0]
        fail(f"{outcome['code']}: {reason}")


def register(app: typer.Typer) -> None:
    app.add_typer(dev_app)
