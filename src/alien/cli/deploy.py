"""The ``alien-deploy`` command: the customer admin's tool (onboard, run, status, teardown).

``up`` onboards with a group token (once) and runs the agent in the foreground; ``run`` resumes an
onboarded state dir; both stop on SIGTERM/SIGINT, stopping the functions they supervise (restart
the agent and the last good release comes straight back). ``status`` shows what runs, ``down``
tears everything down. The state dir defaults to ``$ALIEN_DEPLOY_STATE_DIR`` or
``~/.alien/deploy``; one deployment per state dir.

The agent stays on asyncio's own loop: on uvloop its peak memory while passing 16 MB params to
a function rose by up to 10 MB on a loaded machine (under 0.6 MB on asyncio), which breaks its
flat-memory guarantee for large payloads (tests/agent_commands/test_large_payloads.py); the
cause inside uvloop is not pinned down yet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from alien.agent import governance
from alien.agent.agent import Agent
from alien.agent.config import AgentConfig, default_state_dir
from alien.agent.control import down as tear_down
from alien.agent.control import local_status
from alien.agent.debug_config import reach
from alien.agent.onboard import UpRequest, default_name, onboard_or_resume
from alien.agent.state import StateDir
from alien.cli import audit as audit_cli
from alien.cli import deploy_debug
from alien.cli.approvals_view import approval_line, pending_table
from alien.cli.options import naming_flags, parse_duration
from alien.cli.output import (
    cells,
    console,
    err_console,
    fail,
    print_json,
    render,
    reporting_errors,
)
from alien.client import approvals
from alien.client.sync import ManagerClient
from alien.debug.api import AuditRecord
from alien.errors import ValidationError
from alien.gc_tuning import collect_less, freeze_start_up
from alien.malloc_tuning import keep_freed_memory
from alien.protocol.audit import verify_deployment_chain
from alien.redaction import install_logging_redaction

app = typer.Typer(
    name="alien-deploy",
    help="Onboard and control an alien deployment in your environment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class CustomerDebugChoice(StrEnum):
    ALLOWED = "allowed"
    APPROVAL = "approval"
    FORBIDDEN = "forbidden"


class TransportChoice(StrEnum):
    AUTO = "auto"
    WEBSOCKET = "websocket"
    POLL = "poll"


StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the agent keeps its state [ALIEN_DEPLOY_STATE_DIR; default ~/.alien/deploy].",
    ),
]
TransportOption = Annotated[
    TransportChoice,
    typer.Option("--transport", help="auto: WebSocket, HTTPS long-polling when it fails."),
]
ReconnectOption = Annotated[
    float,
    typer.Option("--reconnect-max", min=0.1, help="Longest wait between reconnects, in seconds."),
]
TracebacksOption = Annotated[
    bool,
    typer.Option(
        "--command-tracebacks",
        help="Let failed commands send their handler's traceback to the vendor (it shows code, "
        "file paths and values from this environment; off by default).",
    ),
]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="debug|info|warning|error")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _state_dir(path: Path | None) -> StateDir:
    return StateDir(path if path is not None else default_state_dir())


def _logging(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValidationError(f"unknown log level {level!r}", field="log-level")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    install_logging_redaction()  # tokens and secret-shaped strings never reach the agent's log
    # Per-request lines from the HTTP and WebSocket libraries would drown the agent's own.
    for noisy in ("httpx", "httpcore", "websockets", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


def _config(
    transport: TransportChoice, reconnect_max: float, command_tracebacks: bool
) -> AgentConfig:
    return AgentConfig(
        transport=transport.value,  # type: ignore[arg-type]
        reconnect_max=reconnect_max,
        reconnect_base=min(0.5, reconnect_max),
        command_tracebacks=command_tracebacks,
    )


async def _serve(state_dir: StateDir, config: AgentConfig, request: UpRequest | None) -> None:
    """Onboard or resume (with the lock held), then run the agent until a stop signal.

    A state dir this call created is removed again if onboarding is refused."""
    fresh = not state_dir.root.exists()
    state_dir.lock()
    try:
        if request is not None:
            state, new = await onboard_or_resume(state_dir, request)
            verb = "onboarded" if new else "resuming"
            logging.getLogger("alien.agent").info(
                "%s %s (%s)", verb, state.ref, state.deployment_id
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        agent = Agent(state_dir, config)
        freeze_start_up()
        await agent.run(stop)
    finally:
        state_dir.unlock()
        if fresh:
            state_dir.remove_if_blank()


@app.command()
def up(
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="ALIEN_GROUP_TOKEN",
            show_default=False,
            help="Deployment-group token (ax_dg_…); only needed the first time.",
        ),
    ] = None,
    platform: Annotated[
        str,
        typer.Option(
            "--platform",
            help="Where to run: local (this machine, with an agent) or aws (create the vendor's "
            "management role in this AWS account; no agent).",
        ),
    ] = "local",
    name: Annotated[
        str | None, typer.Option("--name", help="Deployment name (default: the host name).")
    ] = None,
    manager: Annotated[
        str | None,
        typer.Option("--manager", envvar="ALIEN_MANAGER_URL", help="The manager's URL."),
    ] = None,
    state_dir: StateDirOption = None,
    transport: TransportOption = TransportChoice.AUTO,
    reconnect_max: ReconnectOption = 30.0,
    command_tracebacks: TracebacksOption = False,
    log_level: LogLevelOption = "info",
    region: Annotated[
        str | None,
        typer.Option("--region", help="aws: the deployment's region (default: AWS_REGION)."),
    ] = None,
    role_name: Annotated[
        str | None,
        typer.Option("--role-name", help="aws: the role to create (default: alien-<name>)."),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="aws: create the role without asking.")
    ] = False,
) -> None:
    """Onboard (first time) and run the agent here; --platform aws: create the vendor's role.

    With --platform aws no agent runs: the vendor's management role is created in this AWS
    account (after you confirm the plan) and the deployment is registered."""
    keep_freed_memory()
    collect_less()
    with reporting_errors():
        _logging(log_level)
        if platform == "aws":
            from alien.cli.deploy_aws import AwsUpRequest, onboard_aws  # botocore: this path only

            aws = AwsUpRequest(token, manager, name or default_name(), region, role_name, yes)
            onboard_aws(
                aws, lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True)
            )
            return
        request = UpRequest(token=token, name=name, platform=platform, manager=manager)
        config = _config(transport, reconnect_max, command_tracebacks)
        asyncio.run(_serve(_state_dir(state_dir), config, request))


@app.command()
def run(
    state_dir: StateDirOption = None,
    transport: TransportOption = TransportChoice.AUTO,
    reconnect_max: ReconnectOption = 30.0,
    command_tracebacks: TracebacksOption = False,
    log_level: LogLevelOption = "info",
) -> None:
    """Run the agent of an onboarded state dir in the foreground (no token needed)."""
    keep_freed_memory()
    collect_less()
    with reporting_errors():
        _logging(log_level)
        directory = _state_dir(state_dir)
        directory.load()  # a clear error before anything starts if nothing was onboarded here
        asyncio.run(_serve(directory, _config(transport, reconnect_max, command_tracebacks), None))


def _human_status(data: dict[str, Any]) -> None:
    agent = f"running (pid {data['pid']})" if data["agent_running"] else "not running"
    link = (
        (f"connected ({data['transport']})" if data["connected"] else "not connected")
        if data["agent_running"]
        else "-"
    )
    rows = [
        ("deployment", f"{data['group']}/{data['name']} ({data['deployment_id']})"),
        ("manager", f"{data['manager_url']} — {link}"),
        ("agent", agent),
        ("state", data["state"] or "-"),
        ("release", data["release"] or "-"),
        ("desired", data["desired_release"] or "-"),
        ("last good", data["last_good_release"] or "-"),
    ]
    if data["agent_running"] and not data["connected"] and data.get("problem"):
        rows.append(("problem", data["problem"]))  # why it is not connected, e.g. a clone
    if data["error"]:
        rows.append(("error", data["error"]))
    for key, value in rows:
        console.print(f"{key:>11}: {value}", highlight=False, markup=False)
    for fn in data["functions"]:
        url = f" {fn['url']}" if fn.get("url") else ""
        console.print(
            f"   function: {fn['id']} {fn['state']} ({fn['release']}){url}",
            highlight=False,
            markup=False,
        )
    if not data["agent_running"]:
        console.print("nothing is served: functions run only while the agent runs", highlight=False)


@app.command()
def status(state_dir: StateDirOption = None, as_json: JsonOption = False) -> None:
    """Show what runs here: release, functions, URLs, state."""
    with reporting_errors():
        render(local_status(_state_dir(state_dir)), as_json, _human_status)


@app.command()
def debug(state_dir: StateDirOption = None, as_json: JsonOption = False) -> None:
    """What a vendor's debug session may reach through this agent (your debug.json), checked."""
    with reporting_errors():
        data = reach(_state_dir(state_dir).root)
    render(data, as_json, deploy_debug.human)


@app.command()
def down(
    state_dir: StateDirOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
    platform: Annotated[
        str,
        typer.Option(
            "--platform",
            help="local (this machine's agent and area) or aws (delete the vendor's management "
            "role in this AWS account).",
        ),
    ] = "local",
    name: Annotated[
        str | None, typer.Option("--name", help="aws: the deployment's name (role alien-<name>).")
    ] = None,
    role_name: Annotated[
        str | None, typer.Option("--role-name", help="aws: the role, if up was given one.")
    ] = None,
    manager: Annotated[
        str | None,
        typer.Option(
            "--manager",
            envvar="ALIEN_MANAGER_URL",
            help="aws: the manager to tell, with ALIEN_DEPLOYMENT_TOKEN.",
        ),
    ] = None,
) -> None:
    """Stop the agent, delete its area with ALL the data, tell the manager; aws: delete the role.

    With --platform aws no agent runs here: the vendor's management role is deleted, after the
    manager is told (with ALIEN_DEPLOYMENT_TOKEN) to forget the deployment."""
    if platform == "aws":
        _down_aws(name, role_name, manager, yes, as_json)
        return
    with reporting_errors():
        if platform != "local":
            raise ValidationError("--platform is local or aws", field="platform")
        directory = _state_dir(state_dir)
        state = directory.load()
        if not yes:
            typer.confirm(
                f"Tear down {state.ref}: stop its functions and delete its area "
                f"({state.area}) with all its data?",
                abort=True,
            )
        result = asyncio.run(tear_down(directory))
    data = {
        "deployment": result.deployment,
        "torn_down": True,
        "told_manager": result.told_manager,
        "warning": result.warning,
    }

    def human(_: Any) -> None:
        here = "" if result.told_manager else " here"
        console.print(f"alien-deploy: {result.deployment} torn down{here}", highlight=False)

    render(data, as_json, human)
    if not result.told_manager:
        fail(
            f"{result.warning}; run alien-deploy down again once it is reachable (the state dir "
            f"keeps what that needs), or delete {directory.root} to forget the deployment "
            "without telling the manager"
        )


def _down_aws(
    name: str | None, role_name: str | None, manager: str | None, yes: bool, as_json: bool
) -> None:
    from alien.cli.deploy_aws import AwsDownRequest, offboard_aws  # botocore: this path only

    with reporting_errors():
        if not name and not role_name:
            raise ValidationError("pass --name (or --role-name) of the deployment", field="name")
        token = os.environ.get(governance.TOKEN_ENV)
        done = offboard_aws(AwsDownRequest(name or "", role_name, manager, token, yes))
    data = {
        "deployment": done.deployment,
        "role": done.role,
        "deleted": True,
        "told_manager": done.told_manager,
        "warning": done.warning,
    }

    def human(_: Any) -> None:
        console.print(
            f"alien-deploy: deleted the role {done.role}: the vendor can no longer reach this "
            f"account for {done.deployment}",
            highlight=False,
        )
        if done.warning:
            err_console.print(
                f"warning: {done.warning}", highlight=False, markup=False, soft_wrap=True
            )

    render(data, as_json, human)


# --- access governance: the customer's policy, approvals and audit view ---------------------
# Every command below speaks with the deployment's OWN token (the state dir's, or
# ALIEN_DEPLOYMENT_TOKEN with --manager for a push-model deployment): never the vendor's.

policy_app = typer.Typer(
    name="policy",
    help="What you allow the vendor on this deployment (intersected with the vendor's policy).",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")

ManagerOverride = Annotated[
    str | None,
    typer.Option("--manager", help="The manager's URL (default: the state dir's)."),
]


class Switch(StrEnum):
    ON = "on"
    OFF = "off"


def _governance_client(state_dir: Path | None, manager: str | None) -> ManagerClient:
    return ManagerClient(governance.credentials(_state_dir(state_dir), manager=manager))


def _names(value: str | None, *, everything: str | None = "all") -> list[str] | None:
    """``a,b`` → the list; ``all`` → ``None`` (no limit of yours); ``""`` → nothing at all.

    ``everything=None``: no word means "any" (``--commands``, where ``all`` may be a command's
    name and ``--commands-all`` lifts the limit): ``""`` is nothing there too, never "any"."""
    if value is None or (everything is not None and value.strip().lower() == everything):
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def _policy_human(data: dict[str, Any]) -> None:
    customer, effective = data["customer"], data["effective"]

    def listed(values: list[str] | None) -> str:
        return "any" if values is None else (", ".join(values) or "none")

    ttl = customer["max_ttl_seconds"]
    rows = [
        ("access", "on" if customer["access"] else "OFF (all vendor access suspended)", ""),
        ("debug", customer["debug"], effective["debug"]),
        ("approvers", "-", ", ".join(effective["approvers"]) or "-"),
        ("max ttl", f"{ttl}s" if ttl else "any", f"{effective['max_ttl_seconds']}s"),
        ("channels", listed(customer["channels"]), listed(effective["channels"])),
        ("egress", listed(customer["egress_allow"]), listed(effective["egress_allow"])),
        ("commands", listed(customer["commands"]), listed(effective["commands"])),
        (
            "cmd approval",
            "on" if customer["command_approval"] else "off",
            ", ".join(effective["command_approvers"]) or "-",
        ),
    ]
    table = Table(box=None, pad_edge=False)
    for column in ("", "YOURS", "EFFECTIVE"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*cells(row))
    console.print(table)
    if customer.get("held_release"):
        console.print(f"held release: {customer['held_release']} (delivered when access is on)")


@policy_app.command("show")
def policy_show(
    state_dir: StateDirOption = None, manager: ManagerOverride = None, as_json: JsonOption = False
) -> None:
    """Your policy and the effective one (yours ∩ the vendor's)."""
    with reporting_errors(), _governance_client(state_dir, manager) as client:
        data = client.call(governance.get_policy())
    render(data, as_json, _policy_human)


@policy_app.command("set")
def policy_set(
    debug: Annotated[
        CustomerDebugChoice | None, typer.Option("--debug", help="May the vendor debug here?")
    ] = None,
    max_ttl: Annotated[
        str | None,
        typer.Option("--max-ttl", help="Longest debug session: seconds, 30m, 2h; 'all': any."),
    ] = None,
    channels: Annotated[
        str | None,
        typer.Option("--channels", help="aws,gcp,azure,kubectl,http,env; 'all': any."),
    ] = None,
    egress_allow: Annotated[
        str | None,
        typer.Option("--egress-allow", help="host[:port],*.domain the debug egress may reach."),
    ] = None,
    commands: Annotated[
        str | None,
        typer.Option("--commands", help="The only commands the vendor may run: a,b; '' for none."),
    ] = None,
    commands_all: Annotated[
        bool, typer.Option("--commands-all", help="Any command (lifts --commands).")
    ] = False,
    command_approval: Annotated[
        Switch | None, typer.Option("--command-approval", help="Approve each command first.")
    ] = None,
    access: Annotated[
        Switch | None,
        typer.Option("--access", help="off: suspend ALL vendor access now (on: resume)."),
    ] = None,
    state_dir: StateDirOption = None,
    manager: ManagerOverride = None,
    as_json: JsonOption = False,
) -> None:
    """Change your policy; options not given stay as they are."""
    with reporting_errors():
        if commands is not None and commands_all:
            raise ValidationError("give --commands or --commands-all, not both", field="commands")
        changes: dict[str, Any] = {}
        if debug is not None:
            changes["debug"] = debug.value
        if max_ttl is not None:
            everything = max_ttl.strip().lower() == "all"
            changes["max_ttl_seconds"] = (
                None if everything else parse_duration(max_ttl, "--max-ttl")
            )
        if channels is not None:
            changes["channels"] = _names(channels)
        if egress_allow is not None:
            changes["egress_allow"] = _names(egress_allow)
        if commands is not None or commands_all:
            changes["commands"] = None if commands_all else _names(commands, everything=None)
        if command_approval is not None:
            changes["command_approval"] = command_approval is Switch.ON
        if access is not None:
            changes["access"] = access is Switch.ON
        if not changes:
            raise ValidationError("nothing to change: give at least one option", field="policy")
        with _governance_client(state_dir, manager) as client:
            data = client.call(governance.set_policy(changes))
    render(data, as_json, _policy_human)


@app.command()
def approve(
    subject: Annotated[str, typer.Argument(help="The dbg_… session or cmd_… command.")],
    for_: Annotated[
        str | None,
        typer.Option(
            "--for", help="How long a debug session may run: 30m, 2h, 900 (seconds); 1s to 12h."
        ),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Recorded in the audit.")] = None,
    state_dir: StateDirOption = None,
    manager: ManagerOverride = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a debug session or a command that waits for you."""
    with reporting_errors():
        grant = parse_duration(for_, "--for") if for_ is not None else None
        with _governance_client(state_dir, manager) as client, naming_flags(grant_seconds="--for"):
            info = client.call(approvals.approve(subject, grant, note))
    render(info.model_dump(mode="json"), as_json, lambda _: console.print(approval_line(info)))


@app.command()
def deny(
    subject: Annotated[str, typer.Argument(help="The dbg_… session or cmd_… command.")],
    note: Annotated[str | None, typer.Option("--note", help="Recorded in the audit.")] = None,
    state_dir: StateDirOption = None,
    manager: ManagerOverride = None,
    as_json: JsonOption = False,
) -> None:
    """Deny a debug session or a command that waits for you."""
    with reporting_errors(), _governance_client(state_dir, manager) as client:
        info = client.call(approvals.deny(subject, note))
    render(info.model_dump(mode="json"), as_json, lambda _: console.print(approval_line(info)))


@app.command()
def pending(
    state_dir: StateDirOption = None, manager: ManagerOverride = None, as_json: JsonOption = False
) -> None:
    """What waits for approval on this deployment."""
    with reporting_errors(), _governance_client(state_dir, manager) as client:
        items = client.call(approvals.list_approvals("pending"))
    render([a.model_dump(mode="json") for a in items] if as_json else items, as_json, pending_table)


@app.command("audit")
def audit_(
    verify: Annotated[
        bool, typer.Option("--verify", help="Check hashes, signatures and the chain locally.")
    ] = False,
    public_key: audit_cli.PublicKeyOption = None,
    head: audit_cli.HeadOption = None,
    state_dir: StateDirOption = None,
    manager: ManagerOverride = None,
    as_json: JsonOption = False,
) -> None:
    """This deployment's audit records (and nothing about any other), or --verify them."""
    with reporting_errors():
        if not verify and (public_key is not None or head is not None):
            flag = "--public-key" if public_key is not None else "--head"
            raise ValidationError(f"{flag} checks a verification: add --verify", field=flag)
        config = governance.credentials(_state_dir(state_dir), manager=manager)
    with ManagerClient(config) as client:
        if not verify:
            with reporting_errors():
                records = audit_cli.read_all(client, governance.AUDIT_PATH)
            if as_json:
                print_json(records)
            else:
                audit_cli.records_table([AuditRecord.model_validate(r) for r in records])
            return
        with reporting_errors():  # the deployment the chain must belong to, from the manager
            deployment = str(client.call(governance.get_policy())["deployment_id"])
        audit_cli.verify_and_report(
            lambda c: audit_cli.read_all(c, governance.AUDIT_PATH),
            lambda records, key, expected: verify_deployment_chain(
                records, key, deployment, expected_head=expected
            ),
            f"the audit trail of {deployment}",
            client,
            public_key,
            head,
            as_json,
        )


if __name__ == "__main__":
    app()
