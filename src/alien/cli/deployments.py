"""``alien deployments ls|describe|wait``: what the fleet runs, as the manager knows it.

Also home of the ``--manager`` / ``--token`` options every manager-facing ``alien`` command takes
(``ALIEN_MANAGER_URL``, ``ALIEN_TOKEN`` / ``ALIEN_API_KEY``). ``wait`` blocks on the manager's
long poll, never a sleep loop, and exits 0 when the deployment runs the release, 1 when that
release failed there, 3 on timeout, with one line on stderr.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from alien.cli.options import JsonOption, ManagerOption, TokenOption, naming_flags
from alien.cli.output import cells, console, fail, print_json, render, reporting_errors
from alien.client.config import ClientConfig
from alien.client.models import Deployment, RefusedAgent
from alien.client.sync import ManagerClient

EXIT_FAILED = 1
EXIT_TIMEOUT = 3


deployments_app = typer.Typer(
    name="deployments", help="Deployments: state, releases, heartbeats.", no_args_is_help=True
)


def manager_client(manager: str | None, token: str | None) -> ManagerClient:
    """A client from flags and environment; the token is required (and never printed)."""
    config = ClientConfig.resolve(manager, token)
    config.require_token()
    return ManagerClient(config)


def print_table(table: Table) -> None:
    """Ids and releases must stay whole when piped (no terminal: rich would assume 80 columns)."""
    target = console if console.is_terminal else Console(width=250, highlight=False)
    target.print(table)


def print_rows(headers: tuple[str, ...], rows: list[tuple[str, ...]], ids: tuple[str, ...]) -> None:
    """``rows`` as a borderless table whose ``ids`` columns are never wrapped or cut (they are
    what one copies into the next command), the others folded, through :func:`print_table`."""
    table = Table(box=None, pad_edge=False)
    for index, column in enumerate(headers):
        if column in ids:
            # min_width: even where the other columns cannot shrink enough, the id stays whole.
            longest = max((len(row[index]) for row in rows), default=0)
            table.add_column(column, no_wrap=True, min_width=longest)
        else:
            table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*cells(row))
    print_table(table)


def heartbeat_age(dep: Deployment, now: datetime | None = None) -> float | None:
    if dep.last_heartbeat_at is None:
        return None
    seen = dep.last_heartbeat_at
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - seen).total_seconds())


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def _as_json(dep: Deployment) -> dict[str, Any]:
    return dep.model_dump(mode="json") | {"heartbeat_age": heartbeat_age(dep)}


def _table(deps: list[Deployment]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in (
        "DEPLOYMENT",
        "ID",
        "STATE",
        "CURRENT",
        "DESIRED",
        "AGENT",
        "HEARTBEAT",
        "ERROR",
    ):
        table.add_column(column, overflow="fold")
    for dep in deps:
        table.add_row(
            *cells(
                (
                    dep.ref,
                    dep.id,
                    dep.state,
                    dep.current_release or "-",
                    dep.desired_release or "-",
                    ("connected" if dep.connected else "offline")
                    + (" (conflict)" if dep.agent_conflict else ""),
                    _age(heartbeat_age(dep)),
                    (dep.error or "")[:80],  # the agent's words
                )
            )
        )
    print_table(table)


@deployments_app.command("ls")
def list_deployments(
    group: Annotated[str | None, typer.Option("--group", help="Only this group.")] = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List deployments with their state, releases and last heartbeat."""
    with reporting_errors(), manager_client(manager, token) as client:
        deps = client.list_deployments(group=group)
    if as_json:
        print_json([_as_json(d) for d in deps])
    elif not deps:
        console.print("no deployments yet", highlight=False)
    else:
        _table(deps)


def _agent(dep: Deployment) -> str:
    version = f" {dep.agent_version}" if dep.agent_version else ""
    if dep.agent is None:
        return f"offline{version}"
    agent = dep.agent
    return (
        f"connected{version} ({agent.transport}, {agent.instance or 'unnamed'}"
        f" from {agent.peer or '?'}, since {agent.since:%Y-%m-%d %H:%M:%S}Z)"
    )


def _conflict(refused: RefusedAgent) -> str:
    """One line naming the second agent the manager turned away, and the one it kept."""
    tries = "once" if refused.attempts == 1 else f"{refused.attempts} times"
    return (
        f"a second agent ({refused.instance or 'unnamed'} from {refused.peer or '?'}) was refused"
        f" {tries}, last at {refused.last_at:%Y-%m-%d %H:%M:%S}Z, while"
        f" {refused.holder_instance or 'unnamed'} from {refused.holder_peer or '?'} served"
    )


def _describe(dep: Deployment) -> None:
    rows = [
        ("deployment", f"{dep.ref} ({dep.id})"),
        ("platform", dep.platform),
        ("state", dep.state),
        ("current", dep.current_release or "-"),
        ("desired", dep.desired_release or "-"),
        ("target", dep.target_release or "-"),
        ("last good", dep.last_good_release or "-"),
        ("failed", dep.failed_release or "-"),
        ("agent", _agent(dep)),
        ("heartbeat", _age(heartbeat_age(dep))),
        ("error", dep.error or "-"),
    ]
    if dep.agent_conflict is not None:
        rows.append(("conflict", _conflict(dep.agent_conflict)))
    for key, value in rows:
        console.print(f"{key:>10}: {value}", highlight=False, markup=False, soft_wrap=True)
    detail = dep.status_detail
    for fid, url in sorted((detail.get("urls") or {}).items()):
        console.print(f"{'url':>10}: {fid} {url}", highlight=False, markup=False)
    for fn in detail.get("functions") or []:
        console.print(
            f"{'function':>10}: {fn.get('id')} {fn.get('state')} ({fn.get('release')})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@deployments_app.command("describe")
def describe(
    deployment: Annotated[str, typer.Argument(help="dep_…, group/name, or a unique name.")],
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything the manager knows about one deployment, its error and status detail included."""
    with reporting_errors(), manager_client(manager, token) as client:
        dep = client.get_deployment(deployment)
    render(_as_json(dep) if as_json else dep, as_json, _describe)


@deployments_app.command("wait")
def wait(
    deployment: Annotated[str, typer.Argument(help="dep_…, group/name, or a unique name.")],
    release: Annotated[str, typer.Option("--release", help="The release to wait for (rel_…).")],
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds.")] = 120.0,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Block until the deployment runs the release; exit 1 if it failed there, 3 on timeout."""
    with (
        reporting_errors(),
        naming_flags(release="--release"),
        manager_client(manager, token) as client,
    ):
        result = client.wait_deployment(deployment, release=release, timeout=timeout)
    dep = result.deployment
    if as_json:
        print_json({"outcome": result.outcome, "deployment": _as_json(dep)})
    if result.outcome == "failed":
        fail(f"{dep.ref} failed to run {release}: {dep.error or 'no reason given'}", EXIT_FAILED)
    if result.outcome == "timeout":
        fail(
            f"{dep.ref} does not run {release} after {timeout:g}s "
            f"(state {dep.state}, current {dep.current_release or 'none'})",
            EXIT_TIMEOUT,
        )
    if not as_json:
        console.print(f"{dep.ref} runs {release}", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach ``deployments`` to the top-level ``alien`` app."""
    app.add_typer(deployments_app)
