"""The manager's building blocks: wake-ups, blob store, settings, database, migrations."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, text

from alien.errors import Conflict, PayloadTooLarge, ValidationError
from alien.manager import migrate
from alien.manager.blobs import BlobStore
from alien.manager.db import Database, utcnow
from alien.manager.events import EventHub
from alien.manager.models import Base, Command, CommandPayload, Deployment, Group
from alien.manager.settings import ManagerSettings
from support.databases import DATABASES, database_for


async def test_publish_from_another_thread_wakes_a_subscriber() -> None:
    hub = EventHub()
    with hub.subscribe("deployment:a") as sub:
        threading.Thread(target=hub.publish, args=("deployment:a",)).start()
        assert await sub.wait(5) is True
    assert hub.subscriber_count("deployment:a") == 0


async def test_a_change_between_read_and_wait_is_not_lost() -> None:
    hub = EventHub()
    with hub.subscribe("k") as sub:
        hub.publish("k")  # lands before the subscriber starts waiting
        await asyncio.sleep(0)  # let call_soon_threadsafe run
        assert await sub.wait(0) is True
        assert await sub.wait(0.05) is False  # consumed


async def test_other_keys_do_not_wake() -> None:
    hub = EventHub()
    with hub.subscribe("a") as sub:
        hub.publish("b")
        assert await sub.wait(0.05) is False


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_blob_store_streams_hashes_and_dedupes(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    info = await store.put_stream(_chunks(b"ab", b"cd"), max_bytes=10)
    assert info.digest == "sha256:" + hashlib.sha256(b"abcd").hexdigest() and info.size == 4
    assert store.path_for(info.digest).read_bytes() == b"abcd"
    again = await store.put_stream(_chunks(b"abcd"), max_bytes=10, expected_digest=info.digest)
    assert again == info
    assert store.stat(info.digest) == info
    assert store.stat("sha256:" + "0" * 64) is None
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_a_staged_blob_is_in_the_store_only_once_placed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    staged = await store.stage(_chunks(b"ab", b"cd"), max_bytes=10)
    assert staged.info.size == 4 and store.stat(staged.info.digest) is None
    store.place(staged)
    store.place(staged)  # again, as a retried transaction does: harmless
    store.discard(staged)
    assert store.path_for(staged.info.digest).read_bytes() == b"abcd"
    assert list((tmp_path / "tmp").iterdir()) == []
    abandoned = await store.stage(_chunks(b"xyz"), max_bytes=10)
    store.discard(abandoned)
    with pytest.raises(Conflict):  # its upload gave up before it could be stored
        store.place(abandoned)
    assert store.stat(abandoned.info.digest) is None


async def test_blob_store_refuses_without_leaving_files(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(PayloadTooLarge):
        await store.put_stream(_chunks(b"x" * 6, b"x" * 6), max_bytes=10)
    with pytest.raises(ValidationError) as err:
        await store.put_stream(_chunks(b"abc"), max_bytes=10, expected_digest="sha256:" + "1" * 64)
    assert err.value.code == "DIGEST_MISMATCH"
    with pytest.raises(ValidationError):
        store.path_for("sha256:../../etc/passwd")
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "sha256").exists()


def test_settings_from_env_and_overrides(tmp_path: Path) -> None:
    env = {
        "ALIEN_DATA_DIR": str(tmp_path / "env"),
        "ALIEN_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "ALIEN_ADMIN_KEY": "ax_key_secret",
        "ALIEN_MAX_PACKAGE_BYTES": "1000",
    }
    settings = ManagerSettings.from_env(env, data_dir=tmp_path / "flag")
    assert settings.data_dir == tmp_path / "flag"
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.max_package_bytes == 1000
    assert "ax_key_secret" not in repr(settings)
    default = ManagerSettings.from_env({"ALIEN_DATA_DIR": str(tmp_path)})
    assert default.resolved_database_url() == f"sqlite:///{tmp_path / 'manager.db'}"
    with pytest.raises(ValidationError) as err:
        ManagerSettings.from_env({"ALIEN_MAX_PACKAGE_BYTES": "lots"})
    assert err.value.field == "ALIEN_MAX_PACKAGE_BYTES"


def test_unsupported_database_url_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        Database("mysql://x")
    assert err.value.field == "ALIEN_DATABASE_URL"


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    with db.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db.dispose()


@pytest.mark.parametrize("kind", DATABASES)
def test_migrations_reach_head_match_the_models_and_are_idempotent(
    kind: str, tmp_path: Path
) -> None:
    with database_for(kind) as url:
        db = Database(url or f"sqlite:///{tmp_path / 'm.db'}")
        try:
            migrate.upgrade(db.engine)
            migrate.upgrade(db.engine)
            assert migrate.current_revision(db.engine) == migrate.head_revision()
            with db.engine.connect() as conn:
                context = MigrationContext.configure(conn, opts={"compare_type": True})
                assert compare_metadata(context, Base.metadata) == []
        finally:
            db.dispose()


def _migrate(db: Database, step: str, revision: str) -> None:
    """``alembic upgrade|downgrade <revision>`` on ``db``."""
    config = migrate.alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, step)(config, revision)


def _assert_at_head(db: Database) -> None:
    """Migrate to head: the schema matches the models."""
    migrate.upgrade(db.engine)
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


@pytest.mark.parametrize("kind", DATABASES)
def test_migration_0007_blob_groups_goes_up_and_down(kind: str, tmp_path: Path) -> None:
    """Up: ``blob_groups`` exists, empty (blobs stored before it are unscoped-only). Down: the
    table goes, its rows with it. Up again: back at head, matching the models."""
    with database_for(kind) as url:
        db = Database(url or f"sqlite:///{tmp_path / 'm.db'}")

        def run(step: str, revision: str) -> None:
            _migrate(db, step, revision)

        try:
            run("upgrade", "0006")
            assert "blob_groups" not in inspect(db.engine).get_table_names()
            run("upgrade", "0007")
            with db.engine.begin() as conn:
                assert conn.execute(text("SELECT count(*) FROM blob_groups")).scalar() == 0
                conn.execute(
                    text("INSERT INTO groups (id, name, created_at) VALUES ('grp_1', 'g', :t)"),
                    {"t": "2026-01-01 00:00:00"},
                )
                conn.execute(
                    text("INSERT INTO blob_groups VALUES (:d, 'grp_1')"),
                    {"d": "sha256:" + "a" * 64},
                )
            run("downgrade", "0006")
            assert "blob_groups" not in inspect(db.engine).get_table_names()
            _assert_at_head(db)
            with db.engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM blob_groups")).scalar() == 0
        finally:
            db.dispose()


def _payload_leases(db: Database) -> dict[str, str | None]:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT sha256, lease_id FROM command_payloads"))
        return {row.sha256: row.lease_id for row in rows}


@pytest.mark.parametrize("kind", DATABASES)
def test_migration_0008_gives_results_uploaded_before_it_their_commands_lease(
    kind: str, tmp_path: Path
) -> None:
    """Up: each result row gets its command's lease (the one that answered, or the one holding
    it now), params rows none. Down: the column goes. Up again: head, matching the models."""
    with database_for(kind) as url:
        db = Database(url or f"sqlite:///{tmp_path / 'm.db'}")
        now = utcnow()
        try:
            _migrate(db, "upgrade", "0007")
            with db.engine.begin() as conn:
                conn.execute(insert(Group.__table__).values(id="grp_1", name="g", created_at=now))
                conn.execute(
                    insert(Deployment.__table__).values(
                        id="dep_1",
                        group_id="grp_1",
                        name="d",
                        platform="local",
                        state="running",
                        provisioned=True,
                        status_detail={},
                        metadata={},
                        created_at=now,
                        updated_at=now,
                    )
                )
                for cid, state, lease in (
                    ("cmd_done", "succeeded", "lse_done"),
                    ("cmd_live", "leased", "lse_live"),
                ):
                    conn.execute(
                        insert(Command.__table__).values(
                            id=cid,
                            deployment_id="dep_1",
                            command="c",
                            target="api",
                            state=state,
                            attempt=1,
                            max_attempts=1,
                            created_at=now,
                            deadline=now,
                            lease_id=lease,
                            updated_at=now,
                        )
                    )
                for sha256, payload_kind, cid in (
                    ("a" * 64, "result", "cmd_done"),
                    ("b" * 64, "result", "cmd_live"),
                    ("c" * 64, "params", None),
                ):
                    conn.execute(
                        insert(CommandPayload.__table__).values(
                            kind=payload_kind,
                            sha256=sha256,
                            size=1,
                            deployment_id="dep_1",
                            command_id=cid,
                            created_at=now,
                        )
                    )
            _migrate(db, "upgrade", "0008")
            assert _payload_leases(db) == {
                "a" * 64: "lse_done",
                "b" * 64: "lse_live",
                "c" * 64: None,
            }
            _migrate(db, "downgrade", "0007")
            columns = {c["name"] for c in inspect(db.engine).get_columns("command_payloads")}
            assert "lease_id" not in columns
            _assert_at_head(db)
        finally:
            db.dispose()
