"""The canonical form: one byte spelling per record, so hashes survive storage round trips."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from audit_chains import MANAGER, build_chain, draft
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.dialects.postgresql import JSONB

from alien.manager.db import UTCDateTime
from alien.protocol.audit import (
    AuditRecord,
    canonical_json,
    format_time,
    parse_record,
    seal,
    verify_chain,
)
from support.databases import DATABASES, database_for

# Values that a storage layer likes to respell: integral floats, huge and tiny floats, negative
# zero, big integers, non-ASCII text, key order, characters JSON may or may not escape.
AWKWARD_DETAILS: dict[str, Any] = {
    "zeta": 1,
    "alpha": {"b": 2.0, "a": [1.5, -0.0, 1e300, 1.5e-7, 0.1]},
    "big": 2**63 + 1,
    "text": 'café ✓ 😀 \u2028 \t " \\ </script>',
    "empty": {},
    "none": None,
    "flags": [True, False],
}


def test_the_canonical_form_is_pinned() -> None:
    # A change here breaks verification of every record already stored: bump FORMAT_VERSION.
    record = seal(
        None, draft(7, deployment_id="dep_a", details={"name": "café", "w": 2.0}), MANAGER
    )
    body = record.model_dump(exclude={"hash", "signature"})

    assert (
        canonical_json(body)
        == (
            '{"action":"command.invoke","actor":{"id":"key_0123456789abcdef","kind":"api_key",'
            '"role":"operator"},"deployment_id":"dep_a","deployment_prev_hash":"'
            + "0"
            * 64
            + '","deployment_seq":1,"details":{"name":"café","w":2},"group_id":"grp_main",'
            '"key_id":"56475aa75463474c","outcome":"succeeded","prev_hash":"'
            + "0" * 64
            + '","seq":1,"target":"cmd_0007","time":"2026-03-01T12:00:07.123456Z","v":1}'
        ).encode()
    )
    assert record.hash == hashlib.sha256(canonical_json(body)).hexdigest()
    assert record.hash == "d7f30957c8671331122a5226100361d29ef1c7c5f3d12e88aedbd94860f88b37"


@pytest.mark.parametrize(
    ("value", "spelled"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "2026-01-02T03:04:05.000006Z"),
        (
            datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-02T03:04:05.000000Z",
        ),
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00.000000Z"),
    ],
)
def test_times_are_rfc3339_utc_with_microseconds(value: datetime, spelled: str) -> None:
    assert format_time(value) == spelled


@pytest.mark.parametrize(
    ("value", "spelled"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (1e300, "1" + "0" * 300),
        (0.1, "0.1"),
        (1.5e-7, "1.5e-07"),
        ({"b": 1, "a": [2, {"d": 1, "c": 2}]}, '{"a":[2,{"c":2,"d":1}],"b":1}'),
        ("é\u2028", '"é\u2028"'),
    ],
)
def test_json_values_have_one_spelling(value: Any, spelled: str) -> None:
    assert canonical_json(value) == spelled.encode()


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # past 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=40,
)


@settings(max_examples=500, deadline=None)
@given(_JSON_VALUES)
def test_the_fast_spelling_is_the_json_modules(value: Any) -> None:
    """``canonical_json`` writes with orjson; the form it must keep is the ``json`` module's."""
    try:
        spelled = canonical_json(value)
    except UnicodeEncodeError:  # lone surrogates: refused before sealing (see _check_details)
        return
    reference = json.dumps(
        json.loads(spelled), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert spelled == reference.encode()


def _awkward_chain() -> list[AuditRecord]:
    drafts = [
        draft(0, deployment_id="dep_a", details=AWKWARD_DETAILS),
        draft(1, details={"n": 1.0}),
        draft(2, deployment_id="dep_a", details={"nested": {"list": [[], [{}]]}}),
    ]
    return build_chain(drafts)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: _shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [_shuffled(item, rng) for item in value]
    return value


def test_a_json_round_trip_in_any_spelling_keeps_every_hash() -> None:
    records = _awkward_chain()
    rng = random.Random(7)
    respelled = [
        json.dumps(_shuffled(json.loads(record.to_json()), rng), indent=3, ensure_ascii=True)
        for record in records
    ]

    parsed = [parse_record(text) for text in respelled]

    assert [p.digest() for p in parsed] == [r.hash for r in records]
    assert [p.to_json() for p in parsed] == [r.to_json() for r in records]
    assert verify_chain(respelled, MANAGER.verifier).ok


def test_to_dict_and_to_json_agree() -> None:
    for record in _awkward_chain():
        assert parse_record(record.to_dict()).to_json() == record.to_json()
        assert json.loads(record.to_json()) == record.to_dict()


# --- real databases -----------------------------------------------------------------------------


@pytest.fixture(params=DATABASES)
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_for(request.param) as url:
        yield url or f"sqlite:///{tmp_path / 'audit.db'}"


def _table() -> Table:
    # Columns as a manager would store them: a timezone-aware time, JSON(B) for nested values.
    json_type = JSON().with_variant(JSONB(), "postgresql")
    return Table(
        "audit",
        MetaData(),
        Column("seq", Integer, primary_key=True),
        Column("v", Integer),
        Column("time", UTCDateTime()),
        Column("actor", json_type),
        Column("action", String(128)),
        Column("outcome", String(16)),
        Column("deployment_id", String(128)),
        Column("group_id", String(128)),
        Column("target", String(512)),
        Column("details", json_type),
        Column("prev_hash", String(64)),
        Column("deployment_seq", Integer),
        Column("deployment_prev_hash", String(64)),
        Column("key_id", String(16)),
        Column("hash", String(64)),
        Column("signature", String(128)),
    )


def test_hashes_survive_a_database_round_trip(engine_url: str) -> None:
    records = _awkward_chain()
    table = _table()
    engine = create_engine(engine_url)
    try:
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(table), [record.model_dump() for record in records])
        with engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(select(table).order_by(table.c.seq))]
    finally:
        engine.dispose()

    report = verify_chain(rows, MANAGER.verifier, expected_head=records[-1].head)

    assert report.ok, report.problems
    assert [parse_record(row).to_json() for row in rows] == [r.to_json() for r in records]
