"""``alien debug``: debug a deployment with the real cloud CLIs, through a scoped, audited session.

    alien debug <deployment> [--reason …] [--ttl …] [--json-audit] [-- cmd…]
    alien debug sessions [--deployment …] [--state …] [--json]
    alien debug show <dbg_…> [--json]
    alien debug revoke <dbg_…> [--reason …]
    alien debug policy show|set <deployment> …

``alien debug <deployment>`` is shorthand for ``alien debug open <deployment>`` (a deployment
named like a subcommand needs the long form). Without a command it starts an interactive shell.
Its exit status is the command's; 4 when the session ended under it (revoked, expired, its
tunnel lost and not reconnected within 30 s), 128+N when interrupted by signal N, 1 when the
session could not be opened. The orchestration lives in :mod:`alien.debug.run`; this module
parses, calls and renders.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alien.cli.fast_params import FastParamsCommand, FastParamsGroup
from alien.cli.options import JsonOption, ManagerOption, TokenOption, naming_flags
from alien.cli.output import (
    console,
    err_console,
    fail,
    print_json,
    printable,
    render,
    reporting_errors,
)
from alien.client.config import ClientConfig
from alien.debug import session_calls
from alien.debug.session_calls import DebugSessionInfo, to_json

if TYPE_CHECKING:
    from alien.client.sync import ManagerClient
    from alien.debug import api
    from alien.debug.run import RunResult

DEFAULT_COMMAND = "open"


@contextmanager
def manager_client(manager: str | None, token: str | None) -> Iterator[ManagerClient]:
    """The synchronous client of the listing and admin subcommands (loaded when they run)."""
    from alien.cli.deployments import manager_client as deployments_client

    with deployments_client(manager, token) as client:
        yield client


class _DefaultOpenGroup(FastParamsGroup):
    """Routes ``alien debug <deployment> …`` to ``alien debug open <deployment> …``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


debug_app = typer.Typer(
    name="debug",
    cls=_DefaultOpenGroup,
    help="Debug a deployment with the real cloud CLIs through a scoped, audited session.",
    no_args_is_help=True,
)
policy_app = typer.Typer(name="policy", help="A deployment's debug policy.", no_args_is_help=True)
debug_app.add_typer(policy_app)


def _note(message: str) -> None:
    err_console.print(f"alien: {message}", markup=False, highlight=False, soft_wrap=True)


def _size(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"


def _summary(info: DebugSessionInfo) -> str:
    exit_part = f"exit {info.exit_code}" if info.exit_code is not None else "no exit code"
    return (
        f"debug session {info.id} {info.state}: {exit_part}, {info.requests} requests, "
        f"{_size(info.bytes_in)} sent, {_size(info.bytes_out)} received"
    )


def _reason(reason: str | None) -> str:
    if reason:
        return reason
    if sys.stdin.isatty():
        return str(typer.prompt("Why are you debugging this deployment? (recorded in the audit)"))
    fail("a reason is required: pass --reason '…' (it is recorded in the audit trail)")


@contextmanager
def _unwinding_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP end a run as Ctrl-C does: ``SystemExit(128 + N)`` unwinds it, so the
    session is closed (a session still waiting for approval is withdrawn). By default they
    killed the CLI on the spot, leaving that request in the customer's approval queue. (Once
    the command runs, the run's own handlers stop the command first.)"""

    def unwind(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {
        signum: signal.signal(signum, unwind)
        for signum in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(signum) is signal.SIG_DFL
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _api() -> ModuleType:
    """:mod:`alien.debug.api` (pydantic models of the audit and policy routes), loaded by the
    subcommands that need it rather than by ``alien debug <deployment>``."""
    from alien.debug import api

    return api


def _session_requests(client: ManagerClient, session_id: str) -> list[api.AuditRecord]:
    """Every request audited in a session, page after page."""
    records: list[api.AuditRecord] = []
    while True:
        after = records[-1].seq if records else None
        page = client.call(_api().session_requests(session_id, after=after))
        records += page
        if len(page) < _api().MAX_PAGE:
            return records


def _print_audit(config: ClientConfig, result: RunResult) -> None:
    from alien.client.sync import ManagerClient

    if result.session is None:
        return
    with ManagerClient(config) as client:
        records = _session_requests(client, result.session.id)
    document = {
        "session": to_json(result.session),
        "requests": [r.model_dump(mode="json") for r in records],
    }
    sys.stderr.write(json.dumps(document, sort_keys=True) + "\n")
    sys.stderr.flush()


@debug_app.command(DEFAULT_COMMAND, cls=FastParamsCommand)
def open_session(
    deployment: Annotated[str, typer.Argument(help="dep_…, group/name, or a unique name.")],
    command: Annotated[
        list[str] | None,
        typer.Argument(help="The command to run (after --); none: an interactive shell."),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (recorded in the audit trail).")
    ] = None,
    ttl: Annotated[
        int | None,
        typer.Option("--ttl", min=1, help="Session lifetime in seconds [default: 1 h or less]."),
    ] = None,
    json_audit: Annotated[
        bool,
        typer.Option(
            "--json-audit", help="At the end, print the session and its requests as JSON (stderr)."
        ),
    ] = False,
    approval_timeout: Annotated[
        float,
        typer.Option("--approval-timeout", min=0, help="Seconds to wait for an approval."),
    ] = 900.0,
    manager: ManagerOption = None,
    token: TokenOption = None,
) -> None:
    """Open a session on DEPLOYMENT and run COMMAND (or a shell) with its cloud access.

    COMMAND talks to a loopback proxy with session-only dummy keys; the manager re-signs each
    request with the deployment's scoped role and records it. A tunnel lost while the session
    is active (network, manager restart) is reconnected for up to 30 s; exit status 4 when the
    session ended under the command (revoked, expired) or could not be reconnected.
    """
    # Imported here: the proxy, tunnel and AWS signing stack is only needed by this command.
    import uvloop

    from alien.debug.run import DebugRun, run_debug
    from alien.malloc_tuning import keep_freed_memory

    keep_freed_memory()  # the session's proxy and tunnel move the command's bulk data
    with reporting_errors(), naming_flags(ttl_seconds="--ttl"):
        config = ClientConfig.resolve(manager, token)
        config.require_token()
        plan = DebugRun(
            deployment=deployment,
            reason=_reason(reason),
            command=list(command or []),
            ttl_seconds=ttl,
            approval_timeout=approval_timeout,
        )
        # uvloop: the proxy and tunnel move every byte of the command's traffic; its loop costs
        # about half of asyncio's per chunk.
        with _unwinding_on_termination():
            result = uvloop.run(run_debug(config, plan, _note))
    if result.ended is not None:
        err_console.print(f"error: {result.ended}", markup=False, highlight=False, soft_wrap=True)
    elif result.session is not None:
        _note(_summary(result.session))
    if json_audit:  # last, so that the final stderr line is the JSON document
        with reporting_errors():
            _print_audit(config, result)
    raise typer.Exit(result.exit_code)


# --- sessions ----------------------------------------------------------------------------------


def _age(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def _sessions_table(sessions: list[DebugSessionInfo]) -> None:
    from alien.cli.deployments import print_rows  # the client stack: not on the run path

    if not sessions:
        console.print("no debug sessions", highlight=False)
        return
    headers = ("SESSION", "DEPLOYMENT", "WHO", "STATE", "OPENED", "EXIT", "REQS", "REASON")
    rows = [
        (
            s.id,
            s.deployment,
            s.actor,
            s.state,
            _age(s.created_at),
            "-" if s.exit_code is None else str(s.exit_code),
            str(s.requests),
            s.reason[:60],
        )
        for s in sessions
    ]
    print_rows(headers, rows, ids=("SESSION", "WHO"))  # ids whole, piped or not


@debug_app.command("sessions")
def list_sessions(
    deployment: Annotated[str | None, typer.Option("--deployment", help="Only this one.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="active, closed, …")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Debug sessions, newest first: who, where, why, how it ended."""
    with reporting_errors(), manager_client(manager, token) as client:
        sessions = client.call(session_calls.list_sessions(deployment, state, limit))
    render(
        [to_json(s) for s in sessions] if as_json else sessions,
        as_json,
        _sessions_table,
    )


def _show(data: dict[str, Any]) -> None:
    info: DebugSessionInfo = data["session"]
    for key in (
        "id",
        "deployment",
        "actor",
        "reason",
        "state",
        "created_at",
        "expires_at",
        "ended_at",
        "ended_by",
        "end_reason",
        "exit_code",
    ):
        value = getattr(info, key)
        _line(f"{key:>11}: {'-' if value is None else printable(str(value))}")
    _line(f"{'summary':>11}: {_summary(info)}")
    _line(f"{'requests':>11}: {len(data['requests'])}")
    for r in data["requests"]:
        d = r.details
        _line(
            f"  {r.time:%H:%M:%S} {printable(r.target or '')} {d.get('status')} {r.outcome} "
            f"{_size(d.get('bytes_in', 0))} sent, {_size(d.get('bytes_out', 0))} received, "
            f"{d.get('duration_ms', 0):.0f} ms"
        )


def _line(text: str) -> None:
    """One line whole, piped or not (rich would fold at 80 columns without a terminal)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@debug_app.command("show")
def show_session(
    session_id: Annotated[str, typer.Argument(help="dbg_…")],
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One session and the requests it proxied."""
    with reporting_errors(), manager_client(manager, token) as client:
        info = client.call(session_calls.get_session(session_id))
        records = _session_requests(client, session_id)
    if as_json:
        print_json(
            {
                "session": to_json(info),
                "requests": [r.model_dump(mode="json") for r in records],
            }
        )
    else:
        _show({"session": info, "requests": records})


@debug_app.command("revoke")
def revoke(
    session_id: Annotated[str, typer.Argument(help="dbg_…")],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """End a live session now (admin): its tunnel is cut within a second."""
    with reporting_errors(), manager_client(manager, token) as client:
        info = client.call(session_calls.revoke_session(session_id, reason))
    render(
        to_json(info) if as_json else info,
        as_json,
        lambda i: _line(_summary(i)),
    )


# --- policy ------------------------------------------------------------------------------------


def _policy(policy: api.DebugPolicy) -> None:
    origin = "default" if policy.default else f"set by {policy.updated_by} at {policy.updated_at}"
    console.print(
        f"{policy.mode}, max TTL {policy.max_ttl_seconds}s, channels "
        f"{', '.join(policy.allowed_channels) or 'none'} ({origin})",
        markup=False,
        highlight=False,
    )


@policy_app.command("show")
def show_policy(
    deployment: Annotated[str, typer.Argument(help="dep_…, group/name, or a unique name.")],
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """The deployment's debug policy."""
    with reporting_errors(), manager_client(manager, token) as client:
        policy = client.call(_api().get_policy(deployment))
    render(policy.model_dump(mode="json") if as_json else policy, as_json, _policy)


@policy_app.command("set")
def set_policy(
    deployment: Annotated[str, typer.Argument(help="dep_…, group/name, or a unique name.")],
    mode: Annotated[
        str,
        typer.Option("--mode", help="allowed | approval_required | forbidden"),
    ],
    max_ttl: Annotated[int, typer.Option("--max-ttl", min=1, help="Seconds.")] = 3600,
    channel: Annotated[
        list[str] | None,
        typer.Option("--channel", help="Allowed channel (repeat): aws, gcp, azure, …"),
    ] = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace the deployment's debug policy (admin). Without --channel: every channel."""
    with reporting_errors(), manager_client(manager, token) as client:
        policy = client.call(
            _api().set_policy(
                deployment, mode=mode, max_ttl_seconds=max_ttl, allowed_channels=channel
            )
        )
    render(policy.model_dump(mode="json") if as_json else policy, as_json, _policy)


def register(app: typer.Typer) -> None:
    """Attach ``debug`` to the ``alien`` app."""
    app.add_typer(debug_app)
