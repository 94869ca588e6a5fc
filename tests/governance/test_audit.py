"""The audit log is append-only, hash-chained and signed, covers the vendor's actions, and
``alien audit verify`` / ``alien-deploy audit --verify`` catch any edit, removal or swap made
directly in the database — on SQLite and on PostgreSQL.

One real manager per database kind; records are produced through the API (keys, a release,
commands, a policy change, an approval request, refused attempts), the CLIs run in-process."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "commands"))

from agent_double import KNOWN_COMMANDS, CommandAgent, Deployment, create_command
from agent_double import running_deployment as make_running

from alien.cli.deploy import app as deploy_app
from alien.cli.main import app as alien_app
from alien.protocol.audit import Signer
from support.api import ApiClient
from support.databases import DATABASES, database_for
from support.manager import ManagerProcess

runner = CliRunner()


@dataclass
class Trail:
    manager: ManagerProcess
    engine: Engine
    admin: ApiClient
    dep: Deployment  # the customer whose view is verified
    other: Deployment  # another customer, whose records they must never see


def _produce(manager: ManagerProcess, admin: ApiClient) -> tuple[Deployment, Deployment]:
    """Drive every kind of audited action through the API."""
    key = admin.post("/v1/api-keys", json={"name": "ops", "role": "operator"}).json()
    dep = make_running(admin, commands=KNOWN_COMMANDS)
    other = make_running(admin, commands=KNOWN_COMMANDS)
    customer = admin.with_token(dep.token)
    patch = {"commands": ["echo", "slow"], "command_approval": False}
    assert customer.request("PATCH", "/v1/customer/policy", json=patch).status_code == 200
    with CommandAgent(manager.ws_url, dep.token) as agent:
        done = create_command(admin, dep, "echo", params={"x": 1}).json()
        assert agent.respond(agent.command(command_id=done["id"]), {"x": 1})["ok"]
        stopped = create_command(admin, dep, "slow").json()
        cancelled = admin.post(f"/v1/commands/{stopped['id']}/cancel", json={"reason": "test"})
        assert cancelled.status_code == 200
    assert create_command(admin, dep, "noop").status_code == 403  # refused, audited
    with admin.with_token(key["key"]) as operator:
        assert (
            operator.post("/v1/api-keys", json={"name": "x", "role": "viewer"}).status_code == 403
        )
    assert admin.delete(f"/v1/api-keys/{key['id']}").status_code == 200
    other_customer = admin.with_token(other.token)
    assert (
        other_customer.request(
            "PATCH", "/v1/customer/policy", json={"debug": "forbidden"}
        ).status_code
        == 200
    )
    customer.close()
    other_customer.close()
    return dep, other


@pytest.fixture(scope="module", params=DATABASES)
def trail(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Trail]:
    with database_for(request.param) as url:
        root = tmp_path_factory.mktemp(f"audit-{request.param}")
        manager = ManagerProcess(root, database_url=url).start()
        engine = create_engine(url or f"sqlite:///{manager.data_dir / 'manager.db'}")
        try:
            with manager.client() as admin:
                dep, other = _produce(manager, admin)
                yield Trail(manager, engine, admin, dep, other)
        finally:
            engine.dispose()
            manager.stop()


def alien(trail: Trail, *args: str) -> Result:
    env = {"ALIEN_MANAGER_URL": trail.manager.url, "ALIEN_TOKEN": trail.manager.admin_key}
    return runner.invoke(alien_app, list(args), env=env)


def customer(trail: Trail, *args: str, dep: Deployment | None = None) -> Result:
    env = {"ALIEN_DEPLOYMENT_TOKEN": (dep or trail.dep).token}
    return runner.invoke(deploy_app, [*args, "--manager", trail.manager.url], env=env)


@contextmanager
def tampered(engine: Engine, *statements: tuple[str, dict[str, Any]]) -> Iterator[None]:
    """Apply ``statements`` to the audit table directly; put every row back afterwards."""
    with engine.begin() as conn:
        saved = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM audit_records"))]
        for sql, params in statements:
            conn.execute(text(sql), params)
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_records"))
            conn.execute(
                text(
                    "INSERT INTO audit_records (seq, time, actor, action, deployment, target, "
                    "outcome, details, hash, record) VALUES (:seq, :time, :actor, :action, "
                    ":deployment, :target, :outcome, :details, :hash, :record)"
                ),
                [{**row, "details": json.dumps(row["details"])} for row in saved],
            )


def _record(engine: Engine, seq: int) -> str:
    with engine.connect() as conn:
        return str(conn.scalar(text("SELECT record FROM audit_records WHERE seq = :s"), {"s": seq}))


def _seq_of(engine: Engine, action: str, deployment: str) -> list[int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT seq FROM audit_records WHERE action = :a AND deployment = :d ORDER BY seq"
            ),
            {"a": action, "d": deployment},
        )
        return [int(r[0]) for r in rows]


def test_every_kind_of_vendor_action_is_recorded(trail: Trail) -> None:
    records = json.loads(alien(trail, "audit", "ls", "--limit", "1000", "--json").stdout)
    seen = {(r["action"], r["outcome"]) for r in records}
    for expected in (
        ("key.create", "succeeded"),
        ("key.revoke", "succeeded"),
        ("release.create", "succeeded"),
        ("release.assign", "succeeded"),
        ("policy.customer.set", "succeeded"),
        ("command.create", "succeeded"),
        ("command.create", "denied"),
        ("command.result", "succeeded"),
        ("command.cancel", "succeeded"),
    ):
        assert expected in seen, f"{expected} missing from {sorted(seen)}"
    key_ids = [r["target"] for r in records if r["action"] == "key.create"]
    assert key_ids and all(k.startswith("key_") for k in key_ids)
    assert all(r["signature"] and r["hash"] for r in records)


def test_a_role_refusal_is_recorded(trail: Trail) -> None:
    created = trail.admin.post("/v1/api-keys", json={"name": "auditor-view", "role": "viewer"})
    assert created.status_code == 201, created.text
    with trail.manager.client(created.json()["key"]) as viewer:
        assert viewer.post("/v1/groups", json={"name": "not-allowed"}).status_code == 403
    records = json.loads(alien(trail, "audit", "ls", "--limit", "1000", "--json").stdout)
    refusals = [r for r in records if r["action"] == "access.denied"]
    mine = [r for r in refusals if r["actor"]["id"] == created.json()["id"]]
    assert [(r["outcome"], r["details"]["attempted"]) for r in mine] == [("denied", "groups:write")]


def test_verify_passes_on_the_untouched_log(trail: Trail) -> None:
    result = alien(trail, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("the audit trail verified: ")
    head = trail.admin.get("/v1/audit/head").json()
    pinned = alien(trail, "audit", "verify", "--head", f"{head['seq']}:{head['hash']}", "--json")
    assert pinned.exit_code == 0 and json.loads(pinned.stdout)["head"] == head


def test_an_edited_record_fails_verification(trail: Trail) -> None:
    seq = _seq_of(trail.engine, "command.result", trail.dep.id)[0]
    original = _record(trail.engine, seq)
    edited = original.replace('"outcome":"succeeded"', '"outcome":"failed"')
    assert edited != original
    with tampered(
        trail.engine,
        ("UPDATE audit_records SET record = :r WHERE seq = :s", {"r": edited, "s": seq}),
    ):
        result = alien(trail, "audit", "verify")
        assert result.exit_code == 1
        [line] = result.stderr.strip().splitlines()
        assert f"seq {seq}: hash_mismatch" in line
        mine = customer(trail, "audit", "--verify")
        assert mine.exit_code == 1 and "hash_mismatch" in mine.stderr
        theirs = customer(trail, "audit", "--verify", dep=trail.other)
        assert theirs.exit_code == 0, "another customer's chain is not affected"
    assert alien(trail, "audit", "verify").exit_code == 0
    ignored = customer(trail, "audit", "--head", "1:ab")  # would list, checking nothing
    assert ignored.exit_code == 1
    assert ignored.stderr.strip() == "error: --head checks a verification: add --verify (--head)"


def test_a_removed_record_fails_verification(trail: Trail) -> None:
    seq = _seq_of(trail.engine, "command.cancel", trail.dep.id)[0]
    with tampered(trail.engine, ("DELETE FROM audit_records WHERE seq = :s", {"s": seq})):
        result = alien(trail, "audit", "verify")
        assert result.exit_code == 1
        assert f"seq {seq + 1}: seq_gap" in result.stderr.strip().splitlines()[0]
        mine = customer(trail, "audit", "--verify")
        assert mine.exit_code == 1 and "deployment_seq_gap" in mine.stderr


def test_two_swapped_records_fail_verification(trail: Trail) -> None:
    first, second = _seq_of(trail.engine, "command.create", trail.dep.id)[:2]
    a, b = _record(trail.engine, first), _record(trail.engine, second)
    swap = "UPDATE audit_records SET record = :r WHERE seq = :s"
    with tampered(trail.engine, (swap, {"r": b, "s": first}), (swap, {"r": a, "s": second})):
        result = alien(trail, "audit", "verify")
        assert result.exit_code == 1
        assert "seq_" in result.stderr or "prev_hash_mismatch" in result.stderr
        assert customer(trail, "audit", "--verify").exit_code == 1


def test_a_log_resigned_with_another_key_fails_against_the_pinned_key(
    trail: Trail, tmp_path: Path
) -> None:
    pem = trail.admin.get("/v1/audit/public-key", headers={"Authorization": ""}).json()
    pinned = tmp_path / "manager.pem"
    pinned.write_text(pem["public_key"])
    assert alien(trail, "audit", "verify", "--public-key", str(pinned)).exit_code == 0
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(Signer.generate().verifier.to_pem())
    result = alien(trail, "audit", "verify", "--public-key", str(stranger))
    assert result.exit_code == 1 and "unknown_key" in result.stderr
    key_file = trail.manager.data_dir / "audit-signing-key.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_a_customer_sees_their_own_records_and_nothing_of_anyone_else(trail: Trail) -> None:
    listed = customer(trail, "audit", "--json")
    assert listed.exit_code == 0, listed.output
    records = json.loads(listed.stdout)
    assert records and {r["deployment_id"] for r in records} == {trail.dep.id}
    assert [r["deployment_seq"] for r in records] == list(range(1, len(records) + 1))
    assert trail.other.id not in listed.stdout
    verified = customer(trail, "audit", "--verify")
    assert verified.exit_code == 0 and f"of {trail.dep.id} verified" in verified.stdout
    assert trail.admin.get("/v1/customer/audit").status_code == 403, "not for vendor keys"


def test_a_release_to_several_customers_names_none_of_the_others_in_their_records(
    trail: Trail,
) -> None:
    """A release's per-deployment record (``release.assign``) is in that customer's own view:
    it must not carry the release's whole target list, which names the other customers'
    deployments."""
    targets = [trail.dep.ref, trail.other.ref]
    release = trail.admin.create_release({"type": "deployments", "deployments": targets})["id"]
    with trail.admin.with_token(trail.dep.token) as client:
        records = client.get("/v1/customer/audit").json()["items"]
    assigned = [r for r in records if (r["action"], r["target"]) == ("release.assign", release)]
    assert len(assigned) == 1, records
    text = json.dumps(records)
    assert trail.other.id not in text and trail.other.name not in text
    assert assigned[0]["details"]["targets"] == {"type": "deployments"}


def test_concurrent_appends_keep_one_unbroken_chain(trail: Trail) -> None:
    """Many writers at once (policy changes of two customers, key creations): every record
    lands on its own predecessor, in both the global and the per-deployment chains."""
    before = trail.admin.get("/v1/audit/head").json()["seq"]

    def change(i: int) -> int:
        dep = trail.dep if i % 3 else trail.other
        if i % 2:
            with trail.admin.with_token(dep.token) as client:
                body = {"max_ttl_seconds": 60 + i}
                return client.request("PATCH", "/v1/customer/policy", json=body).status_code
        return trail.admin.post(
            "/v1/api-keys", json={"name": f"k{i}", "role": "viewer"}
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(change, range(24)))
    assert set(statuses) <= {200, 201}, statuses
    assert trail.admin.get("/v1/audit/head").json()["seq"] == before + 24
    assert alien(trail, "audit", "verify").exit_code == 0
    for dep in (trail.dep, trail.other):
        assert customer(trail, "audit", "--verify", dep=dep).exit_code == 0
