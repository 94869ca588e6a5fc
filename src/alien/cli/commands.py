"""``alien commands …``: invoke remote commands on deployments, list, show and cancel them.

::

    alien commands invoke --deployment acme-corp --command generate-report \\
        --params '{"start_date": "2025-01-01"}'
    alien commands invoke --group prod --command rotate-keys --max-concurrency 8 --max-errors 2
    alien commands ls --deployment acme-corp --state failed
    alien commands get cmd_… [--wait 30]
    alien commands cancel cmd_…

``invoke`` prints the result (JSON) and exits 0; when the command fails, or the manager refuses
it, one line ``error: CODE: message`` on stderr and exit 1. ``--async`` prints the command id and
returns at once. ``--json`` prints the whole command (or the fan-out results) as JSON.
``get --wait`` exits 3 when the wait ran out before the command ended (as ``alien deployments
wait`` does on timeout), after printing it as it is.
Thin by design: everything goes through :class:`alien.commands.CommandsClient`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from alien.cli.deployments import manager_client, print_table
from alien.cli.output import cells, console, fail, print_json, render
from alien.commands import Command, CommandFailed, CommandsClient, FanOutResult
from alien.commands.client import DEFAULT_TIMEOUT
from alien.errors import AlienError, ValidationError

EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT), as a shell reports it."""
EXIT_NOT_ENDED = 3
"""``get --wait`` ran out before the command ended: the exit code of a wait that ran out, as
``alien deployments wait`` has it."""

commands_app = typer.Typer(
    name="commands",
    help="Run remote commands on deployments; list, show and cancel them.",
    no_args_is_help=True,
)

ManagerOption = Annotated[
    str | None,
    typer.Option("--manager", help="The manager's URL [ALIEN_MANAGER_URL].", show_default=False),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="API key [ALIEN_TOKEN or ALIEN_API_KEY].", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _client(
    manager: str | None, token: str | None, deployment: str | None = None
) -> CommandsClient:
    return CommandsClient(deployment=deployment, token=token, manager=manager)


def _params(raw: str | None) -> dict[str, Any] | None:
    """``--params`` as a JSON object; ``@path`` reads the JSON from a file (``@-``: stdin)."""
    if raw is None:
        return None
    if raw.startswith("@"):
        source = raw[1:]
        raw = _text(sys.stdin.buffer.read(), "stdin") if source == "-" else _read(Path(source))
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValidationError(f"--params is not valid JSON: {exc}", field="params") from None
    if not isinstance(value, dict):
        raise ValidationError("--params must be a JSON object", field="params")
    return value


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}", field="params") from None
    return _text(data, str(path))


def _text(data: bytes, source: str) -> str:
    """``data`` as JSON text: UTF-8 (RFC 8259), a byte order mark allowed since Windows tools
    write one. Anything else — UTF-16, as PowerShell's ``>`` writes — is one line of error, not
    a traceback (decoding by the locale would garble it, or fail the same way)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + len(data) - len(exc.object)  # past a byte order mark it skipped
        raise ValidationError(
            f"cannot read {source}: it is not UTF-8 text "
            f"(byte 0x{data[offset]:02x} at offset {offset}); save it as UTF-8",
            field="params",
        ) from None


def _one_line(exc: AlienError) -> str:
    return f"{exc.code}: {exc.message}".replace("\n", " ")


def _show_result(result: Any) -> None:
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@commands_app.command("invoke")
def invoke(
    command: Annotated[str, typer.Option("--command", "-c", help="The command's name.")],
    deployment: Annotated[
        str | None,
        typer.Option("--deployment", "-d", help="Deployment id, group/name or unique name."),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", "-g", help="Run on every deployment of this group instead."),
    ] = None,
    params: Annotated[
        str | None,
        typer.Option("--params", "-p", help="JSON object of params; @file or @- reads it."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="The function to run it on (needed when several can)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, help="Seconds until the command's deadline.")
    ] = DEFAULT_TIMEOUT,
    run_async: Annotated[
        bool, typer.Option("--async", help="Print the command id and return at once.")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Retrying with the same key runs it once."),
    ] = None,
    max_concurrency: Annotated[
        int,
        typer.Option("--max-concurrency", min=1, help="With --group: at most this many at once."),
    ] = 8,
    max_errors: Annotated[
        int | None,
        typer.Option(
            "--max-errors", min=0, help="With --group: start no more after this many failed."
        ),
    ] = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a command on a deployment (or a whole group) and print its result."""
    try:
        if (deployment is None) == (group is None):
            raise ValidationError("give --deployment or --group (one of them)", field="deployment")
        values = _params(params)
        with _client(manager, token, deployment) as client:
            if group is not None:
                if run_async:
                    raise ValidationError("--async works with --deployment only", field="async")
                results = client.fan_out(
                    command,
                    values,
                    group=group,
                    max_concurrency=max_concurrency,
                    max_errors=max_errors,
                    target=target,
                    timeout=timeout,
                )
                _fan_out_report(results, as_json)
                return
            if run_async:
                created = client.submit(
                    command, values, target=target, timeout=timeout, idempotency_key=idempotency_key
                )
                render(_dump(created), as_json, lambda _: print(created.id))
                return
            _invoke_one(client, command, values, target, timeout, idempotency_key, as_json)
    except AlienError as exc:
        fail(_one_line(exc))
    except KeyboardInterrupt:
        # Ctrl-C stops the waiting, not the command: say so, rather than exit in silence.
        where = f"--deployment {deployment}" if deployment else f"--group {group}"
        fail(
            f"interrupted: the command was not cancelled and may still run (alien commands ls "
            f"{where} --command {command}; alien commands cancel ID)",
            EXIT_INTERRUPTED,
        )


def _invoke_one(
    client: CommandsClient,
    command: str,
    values: dict[str, Any] | None,
    target: str | None,
    timeout: float,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    ended = client.run(
        command, values, target=target, timeout=timeout, idempotency_key=idempotency_key
    )
    try:
        result = client.result(ended)
    except CommandFailed as exc:
        if as_json:
            print_json(_dump(ended))
        fail(_one_line(exc))
    if as_json:
        print_json({**_dump(ended), "result": result})
    else:
        _show_result(result)


def _fan_out_report(results: dict[str, FanOutResult], as_json: bool) -> None:
    failed = [r for r in results.values() if not r.ok]
    if as_json:
        print_json(
            {
                ref: {
                    "ok": r.ok,
                    "result": r.result,
                    "skipped": r.skipped,
                    "error": None
                    if r.error is None
                    else {"code": r.error.code, "message": r.error.message},
                    "command_id": r.command_id,
                }
                for ref, r in results.items()
            }
        )
    else:
        table = Table(title="fan-out", title_justify="left")
        for column in ("deployment", "outcome", "result / error"):
            table.add_column(column)
        for ref, r in results.items():
            outcome = "ok" if r.ok else ("skipped" if r.skipped else "failed")
            detail = json.dumps(r.result) if r.ok else _one_line(r.error) if r.error else ""
            table.add_row(*cells((ref, outcome, detail[:200])))
        print_table(table)
    if failed:
        fail(f"{len(failed)} of {len(results)} deployment(s) did not succeed")


def _error(exc: AlienError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message}


def _dump(command: Command) -> dict[str, Any]:
    return command.model_dump(mode="json")


@commands_app.command("ls")
def list_commands(
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="Only this deployment's.")
    ] = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only this group's.")] = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Only in these states (repeatable).")
    ] = None,
    command: Annotated[
        str | None, typer.Option("--command", "-c", help="Only this command name.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List commands, newest first."""
    try:
        with _client(manager, token) as client:
            items = client.list(
                deployment=deployment, group=group, state=state, command=command, limit=limit
            )
    except AlienError as exc:
        fail(_one_line(exc))

    def human(_: Any) -> None:
        names = _deployment_names(manager, token, {c.deployment_id for c in items})
        table = Table(title="commands", title_justify="left")
        # Ids are what one copies: never cut them.
        table.add_column("id", no_wrap=True)
        table.add_column("deployment", no_wrap=True)
        for column in ("command", "target", "state", "attempt", "created"):
            table.add_column(column, overflow="fold")
        for c in items:
            table.add_row(
                *cells(
                    (
                        c.id,
                        names.get(c.deployment_id, c.deployment_id),
                        c.command,
                        c.target,
                        c.state if c.error is None else f"{c.state} ({c.error.code})",
                        f"{c.attempt}/{c.max_attempts}",
                        c.created_at.isoformat(timespec="seconds"),
                    )
                )
            )
        print_table(table)

    render([_dump(c) for c in items], as_json, human)


def _deployment_names(manager: str | None, token: str | None, ids: set[str]) -> dict[str, str]:
    """``group/name`` of each deployment in ``ids`` the caller may list (a command names its
    deployment by id); one it may not see, or a listing refused, keeps its id."""
    if not ids:
        return {}
    try:
        with manager_client(manager, token) as client:
            return {d.id: f"{d.group}/{d.name}" for d in client.list_deployments() if d.id in ids}
    except AlienError:
        return {}


@commands_app.command("get")
def get_command(
    command_id: Annotated[str, typer.Argument(help="The command's id (cmd_…).")],
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            help="Wait up to this many seconds for it to end; exit 3 if it has not by then.",
        ),
    ] = 0.0,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one command (with --wait, once it ended; exit 3 if the wait ran out before)."""
    try:
        with _client(manager, token) as client:
            found = client.wait(command_id, timeout=wait) if wait > 0 else client.get(command_id)
    except AlienError as exc:
        fail(_one_line(exc))
    render(_dump(found), as_json, _show_command)
    if wait > 0 and not found.ended:
        # A script waiting for the command must not take "still running" for "done".
        fail(
            f"command {found.id} has not ended after {wait:g}s (state {found.state})",
            EXIT_NOT_ENDED,
        )


def _show_command(data: dict[str, Any]) -> None:
    lines = [
        f"{data['id']}  {data['command']} on {data['deployment_id']} ({data['target']})",
        f"state     {data['state']} (attempt {data['attempt']}/{data['max_attempts']})",
        f"created   {data['created_at']}  deadline {data['deadline']}",
    ]
    if data.get("ended_at"):
        lines.append(f"ended     {data['ended_at']}")
    if data.get("error"):
        lines.append(f"error     {data['error']['code']}: {data['error']['message']}")
    if data.get("result_ref"):
        lines.append(f"result    {data['result_ref']['size']} bytes by reference")
    elif data["state"] == "succeeded":
        lines.append("result    " + json.dumps(data.get("result"), ensure_ascii=False)[:2000])
    for line in lines:
        console.print(Text(line), soft_wrap=True)


@commands_app.command("cancel")
def cancel_command(
    command_id: Annotated[str, typer.Argument(help="The command's id (cmd_…).")],
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded with it.")] = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a command that has not ended (its handler is told to stop)."""
    try:
        with _client(manager, token) as client:
            cancelled = client.cancel(command_id, reason)
    except AlienError as exc:
        fail(_one_line(exc))
    render(_dump(cancelled), as_json, lambda _: print(f"{cancelled.id} cancelled"))


def register(app: typer.Typer) -> None:
    """Attach ``commands`` to the top-level ``alien`` app."""
    app.add_typer(commands_app)
