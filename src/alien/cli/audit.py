"""``alien audit``: the manager's tamper-evident audit trail — list it, and verify it.

``alien audit ls`` (or plain ``alien audit``) lists records oldest first; ``--after SEQ`` pages
forward, ``--session dbg_…`` narrows to one debug session. ``alien audit verify`` reads the
whole trail and the manager's public key and checks, locally, every record's hash and Ed25519
signature and every link of the global chain and of each deployment's chain; it exits 1 with a
one-line reason on the first problem. Pin the key (``--public-key FILE``, the PEM from ``GET
/v1/audit/public-key`` saved earlier) so that a manager that re-signed its log with a new key
is caught too, and pass a head published earlier (``--head SEQ:HASH``) to catch a log cut short.

The reading and checking helpers here are shared with ``alien-deploy audit --verify`` (one
deployment's chain).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from alien.cli.deployments import manager_client, print_rows
from alien.cli.options import JsonOption, ManagerOption, TokenOption
from alien.cli.output import console, err_console, print_json, reporting_errors
from alien.client.calls import Call
from alien.client.sync import ManagerClient
from alien.debug import api
from alien.debug.api import AuditRecord
from alien.errors import ValidationError
from alien.protocol.audit import ChainHead, Verifier, VerifyReport, verify_chain

PAGE = api.MAX_PAGE

_DETAIL_KEYS = (
    "status",
    "state",
    "reason",
    "end_reason",
    "exit_code",
    "mode",
    "code",
    "bytes_out",
    "command",
    "parties",
    "changed",
)

_ID_COLUMNS = ("SEQ", "ACTOR", "TARGET")
"""Never folded nor cut: a seq is what ``--after`` takes, an actor or target id what other
commands do."""

audit_app = typer.Typer(
    name="audit",
    help="The tamper-evident audit trail: list it (ls), verify it (verify).",
    invoke_without_command=True,
)


# --- reading and verifying (shared with alien-deploy) ----------------------------------------


def public_key_call() -> Call[Verifier]:
    return Call("GET", "/v1/audit/public-key", lambda data: Verifier.from_pem(data["public_key"]))


def raw_page(path: str, after: int | None) -> Call[list[dict[str, Any]]]:
    """One page of sealed records as the manager stores them (every field, for verification)."""
    params: dict[str, Any] = {"limit": PAGE}
    if after is not None:
        params["after"] = after
    return Call("GET", path, _items, params=params)


def read_all(client: ManagerClient, path: str) -> list[dict[str, Any]]:
    """Every record behind ``path`` (``/v1/audit`` or ``/v1/customer/audit``), oldest first."""
    records: list[dict[str, Any]] = []
    while True:
        after = records[-1]["seq"] if records else None
        page = client.call(raw_page(path, after))
        records += page
        if len(page) < PAGE:
            return records


def load_verifier(client: ManagerClient, pinned: Path | None) -> Verifier:
    """The pinned public key when given, else the manager's."""
    if pinned is None:
        return client.call(public_key_call())
    try:
        return Verifier.from_pem(pinned.read_bytes())
    except OSError as exc:
        raise ValidationError(f"cannot read {pinned}: {exc.strerror}", field="public-key") from None


def parse_head(text: str | None) -> ChainHead | None:
    """``SEQ:HASH`` → a head; ``None`` passes through."""
    if text is None:
        return None
    seq, sep, digest = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return ChainHead(seq=int(seq), hash=digest)
    except ValueError:
        raise ValidationError("expected SEQ:HASH (64 hex)", field="head") from None
    except ValidationError as exc:
        raise ValidationError(exc.message, field="head") from None


def report_verification(report: VerifyReport, what: str, key_id: str, as_json: bool) -> None:
    """Print the outcome; exit 1 with a one-line reason (the first problem) when it failed."""
    head = report.head
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "key_id": key_id,
                "head": head.model_dump() if head else None,
                "problems": [
                    {"seq": p.seq, "kind": p.kind.value, "message": p.message}
                    for p in report.problems
                ],
            }
        )
    if not report.ok:
        first = report.problems[0]
        where = f"seq {first.seq}: " if first.seq is not None else ""
        more = len(report.problems) - 1
        extra = f" (+{more} more problem{'s' if more > 1 else ''})" if more else ""
        err_console.print(
            f"error: {what} FAILED verification: {where}{first.kind.value}: {first.message}{extra}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    if not as_json:
        at = f"head seq {head.seq} {head.hash}" if head else "empty"
        console.print(
            f"{what} verified: {report.checked} records, {at} (key {key_id})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


# --- listing -----------------------------------------------------------------------------------


def _detail(details: dict[str, Any]) -> str:
    return " ".join(f"{k}={details[k]}" for k in _DETAIL_KEYS if details.get(k) is not None)


def records_table(records: list[AuditRecord]) -> None:
    """Ids (actor, target) stay whole on one line, so they can be copied into the next command;
    the other columns fold where the terminal is too narrow."""
    if not records:
        console.print("no audit records", highlight=False)
        return
    rows = [
        (
            str(r.seq),
            f"{r.time:%Y-%m-%d %H:%M:%S}",
            r.actor.id,
            r.action,
            r.target or "-",
            r.outcome,
            _detail(r.details)[:100],
        )
        for r in records
    ]
    headers = ("SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAILS")
    print_rows(headers, rows, _ID_COLUMNS)


ActionOption = Annotated[
    str | None, typer.Option("--action", help="e.g. debug.request, or a prefix: debug.")
]
DeploymentOption = Annotated[str | None, typer.Option("--deployment")]
SessionOption = Annotated[str | None, typer.Option("--session", help="Only this dbg_… session.")]
AfterOption = Annotated[int | None, typer.Option("--after", min=0, help="Records after this seq.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=PAGE)]


def _list(
    action: str | None,
    deployment: str | None,
    session: str | None,
    after: int | None,
    limit: int,
    manager: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    described = api.list_audit(
        action=action, deployment=deployment, session=session, after=after, limit=limit
    )
    raw = Call(described.method, described.path, _items, params=described.params)
    with reporting_errors(), manager_client(manager, token) as client:
        records = client.call(raw)
    if as_json:  # exactly as sealed: hashes and signatures included, verifiable as printed
        print_json(records)
        return
    records_table([AuditRecord.model_validate(r) for r in records])
    if len(records) == limit:  # a full page: there may be more, and nothing else would say so
        err_console.print(
            f"(the first {limit} records from there; the next ones: --after {records[-1]['seq']})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _items(data: Any) -> list[dict[str, Any]]:
    return list(data["items"])


@audit_app.callback()
def audit(
    ctx: typer.Context,
    action: ActionOption = None,
    deployment: DeploymentOption = None,
    session: SessionOption = None,
    after: AfterOption = None,
    limit: LimitOption = 100,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List audit records (as ``alien audit ls``), or run a subcommand."""
    if ctx.invoked_subcommand is None:
        _list(action, deployment, session, after, limit, manager, token, as_json)


@audit_app.command("ls")
def list_records(
    action: ActionOption = None,
    deployment: DeploymentOption = None,
    session: SessionOption = None,
    after: AfterOption = None,
    limit: LimitOption = 100,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List audit records: who did what, where, when, and the outcome."""
    _list(action, deployment, session, after, limit, manager, token, as_json)


PublicKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--public-key", help="Verify with this PEM public key instead of the manager's own."
    ),
]
HeadOption = Annotated[
    str | None,
    typer.Option("--head", help="SEQ:HASH of a head published earlier (detects truncation)."),
]


def verify_and_report(
    read: Callable[[ManagerClient], list[dict[str, Any]]],
    check: Callable[[list[dict[str, Any]], Verifier, ChainHead | None], VerifyReport],
    what: str,
    client: ManagerClient,
    public_key: Path | None,
    head: str | None,
    as_json: bool,
) -> None:
    """Read records with ``read``, check them with ``check`` against the (pinned) key and the
    expected head, and report: exit 1 with one line on the first problem."""
    with reporting_errors():
        expected = parse_head(head)
        verifier = load_verifier(client, public_key)
        records = read(client)
    report_verification(check(records, verifier, expected), what, verifier.key_id, as_json)


@audit_app.command("verify")
def verify(
    public_key: PublicKeyOption = None,
    head: HeadOption = None,
    manager: ManagerOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch every record and the public key; verify hashes, signatures and chains locally."""
    with reporting_errors():
        client = manager_client(manager, token)
    with client:
        verify_and_report(
            lambda c: read_all(c, "/v1/audit"),
            lambda records, key, expected: verify_chain(records, key, expected_head=expected),
            "the audit trail",
            client,
            public_key,
            head,
            as_json,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
