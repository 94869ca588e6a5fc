"""The manager-side parts of commands on their own: URL signing, targeting, the batching writer
and the sweeper's timing."""

from __future__ import annotations

import asyncio
import stat
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from alien.errors import AlienError, Conflict, ValidationError
from alien.manager.commands.signing import Grant, SignedUrlRefused, UrlOp, UrlSigner
from alien.manager.commands.sweeper import Sweeper
from alien.manager.commands.targets import choose_target
from alien.manager.commands.writer import BatchWriter
from alien.manager.db import Database, utcnow
from alien.protocol.command_messages import NO_COMMAND_TARGET


def test_signing_key_is_private_stable_and_binds_every_part(tmp_path: Path) -> None:
    signer = UrlSigner.load_or_create(tmp_path)
    key_file = tmp_path / "command-url.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "secret" in repr(signer) and key_file.read_bytes().hex() not in repr(signer)
    again = UrlSigner.load_or_create(tmp_path)  # a restart keeps handed-out URLs valid
    grant = Grant(UrlOp.PARAMS_GET, "cmd_a", "dep_a", int(time.time()) + 60)
    signature = signer.signature(grant)
    again.verify(grant, signature)
    changed = [
        Grant(UrlOp.RESULT_GET, "cmd_a", "dep_a", grant.expires),
        Grant(UrlOp.PARAMS_GET, "cmd_b", "dep_a", grant.expires),
        Grant(UrlOp.PARAMS_GET, "cmd_a", "dep_b", grant.expires),
        Grant(UrlOp.PARAMS_GET, "cmd_a", "dep_a", grant.expires + 1),
        Grant(UrlOp.PARAMS_GET, "cmd_a", "dep_a", grant.expires, extra="lse_x"),
    ]
    for other in changed:
        with pytest.raises(SignedUrlRefused) as refused:
            signer.verify(other, signature)
        assert refused.value.code == "SIGNED_URL_INVALID"
    with pytest.raises(SignedUrlRefused) as expired:
        signer.verify(grant, signature, now=grant.expires)
    assert expired.value.code == "SIGNED_URL_EXPIRED" and expired.value.status == 403
    assert UrlSigner.load_or_create(tmp_path / "other").signature(grant) != signature


@settings(max_examples=200, deadline=None)
@given(dep=st.text(min_size=1), lease=st.one_of(st.none(), st.text(min_size=1)))
def test_a_signed_query_parses_back_to_its_grant(dep: str, lease: str | None) -> None:
    signer = UrlSigner(b"k" * 32)
    grant = Grant(UrlOp.RESPOND, "cmd_a", dep, 1_900_000_000, extra=lease or "")
    parsed = parse_qs(signer.query(grant), keep_blank_values=True, strict_parsing=True)
    expected = {"dep": [dep], "exp": ["1900000000"], "sig": [signer.signature(grant)]}
    assert parsed == (expected | {"lease": [lease]} if lease else expected)


def test_targeting_rules() -> None:
    def target(functions: tuple[str, ...] | None, requested: str | None = None) -> str:
        return choose_target(
            deployment="g/d",
            functions=functions,
            requested=requested,
            command="go",
            detail={"commands": {"api": ["go"], "jobs": ["other"]}},
        )

    assert target(("api",)) == "api"
    assert target(("api", "jobs"), "api") == "api"
    for functions in (None, ()):
        with pytest.raises(Conflict) as nothing:
            target(functions)
        assert nothing.value.code == NO_COMMAND_TARGET
    with pytest.raises(ValidationError) as required:
        target(("api", "jobs"))
    assert required.value.code == "TARGET_REQUIRED"
    with pytest.raises(ValidationError) as wrong:
        target(("api",), "jobs")
    assert wrong.value.code == "TARGET_AMBIGUOUS"
    with pytest.raises(ValidationError) as unknown:
        target(("api", "jobs"), "jobs")  # jobs reported its names, and "go" is not one
    assert unknown.value.code == "UNKNOWN_COMMAND" and unknown.value.details["known"] == ["other"]


async def test_writer_batches_and_isolates_a_failing_operation(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.write() as session:
        session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    writer = BatchWriter(db)
    writer.start(asyncio.get_running_loop())
    effects: list[int] = []

    def insert(value: int) -> object:
        def op(session: Session) -> tuple[int, list[object]]:
            session.execute(text("INSERT INTO t (id) VALUES (:v)"), {"v": value})
            return value, [lambda: effects.append(value)]

        return op

    def refuse(session: Session) -> tuple[None, list[object]]:
        raise AlienError("no", code="NOPE")

    try:
        results = await asyncio.gather(
            writer.submit(insert(1)),  # type: ignore[arg-type]
            writer.submit(insert(1)),  # type: ignore[arg-type]  # a duplicate key: fails alone
            writer.submit(refuse),  # type: ignore[arg-type]
            writer.submit(insert(2)),  # type: ignore[arg-type]
            return_exceptions=True,
        )
    finally:
        await asyncio.to_thread(writer.stop)
    assert results[0] == 1 and results[3] == 2
    assert isinstance(results[1], Conflict) and getattr(results[2], "code", None) == "NOPE"
    assert sorted(effects) == [1, 2]  # effects only of what committed
    with db.read() as session:
        assert session.execute(text("SELECT id FROM t ORDER BY id")).scalars().all() == [1, 2]
    db.dispose()


async def test_sweeper_sleeps_until_the_earliest_wakeup_and_honours_hints() -> None:
    sweeps: list[float] = []
    upcoming = [utcnow() + timedelta(seconds=30)]
    swept = asyncio.Event()

    async def sweep() -> object:
        sweeps.append(time.monotonic())
        swept.set()
        return upcoming[0]

    sweeper = Sweeper(sweep)  # type: ignore[arg-type]
    task = asyncio.create_task(sweeper.run())
    try:
        await asyncio.wait_for(swept.wait(), 5)
        swept.clear()
        sweeper.hint(utcnow() + timedelta(minutes=5))  # later than planned: no sweep
        sweeper.hint(utcnow() + timedelta(seconds=0.2))  # earlier: a sweep right then
        started = time.monotonic()
        await asyncio.wait_for(swept.wait(), 5)
        assert 0.1 < time.monotonic() - started < 2
        assert len(sweeps) == 2
    finally:
        task.cancel()
