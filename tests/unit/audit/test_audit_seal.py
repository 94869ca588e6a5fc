"""Sealing records, the record model's validation, and the key pair."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from audit_chains import MANAGER, T0, build_chain, chain_of, draft
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from alien.errors import ValidationError
from alien.protocol.audit import (
    GENESIS_HASH,
    MAX_DETAILS_BYTES,
    Actor,
    ActorKind,
    AuditDraft,
    ChainHead,
    Outcome,
    Signer,
    Verifier,
    parse_record,
    seal,
    seal_with_json,
    verify_chain,
)
from alien.protocol.wire import parse


def test_a_sealed_chain_verifies_and_links_every_record() -> None:
    records = chain_of(["dep_a", None, "dep_b", "dep_a", "dep_a", None, "dep_b"])

    report = verify_chain(records, MANAGER.verifier, expected_head=records[-1].head)

    assert report.ok, report.problems
    assert report.checked == 7
    assert report.head == ChainHead(seq=7, hash=records[-1].hash)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5, 6, 7]
    assert records[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert [r.deployment_seq for r in records] == [1, None, 1, 2, 3, None, 2]
    assert records[3].deployment_prev_hash == records[0].hash
    assert records[4].deployment_prev_hash == records[3].hash
    assert records[2].deployment_prev_hash == GENESIS_HASH
    assert records[1].deployment_prev_hash is None


def test_each_record_carries_its_digest_and_a_signature_of_it() -> None:
    (record,) = chain_of(["dep_a"])

    assert record.hash == record.digest()
    assert record.key_id == MANAGER.key_id
    assert len(record.signature) == 128


def test_the_same_draft_sealed_twice_gives_the_same_record() -> None:
    # Ed25519 is deterministic: sealing has no hidden randomness or clock.
    assert chain_of(["dep_a", None]) == chain_of(["dep_a", None])


def test_an_empty_chain_verifies_against_the_empty_head() -> None:
    report = verify_chain([], MANAGER.verifier, expected_head=ChainHead(seq=0, hash=GENESIS_HASH))

    assert report.ok
    assert report.checked == 0


def test_deployment_prev_of_another_deployment_is_refused() -> None:
    first = seal(None, draft(0, deployment_id="dep_a"), MANAGER)

    with pytest.raises(ValidationError) as info:
        seal(first, draft(1, deployment_id="dep_b"), MANAGER, deployment_prev=first)

    assert info.value.field == "deployment_prev"


def test_deployment_prev_without_a_deployment_is_refused() -> None:
    first = seal(None, draft(0, deployment_id="dep_a"), MANAGER)

    with pytest.raises(ValidationError) as info:
        seal(first, draft(1), MANAGER, deployment_prev=first)

    assert info.value.field == "deployment_prev"


def test_deployment_prev_after_prev_is_refused() -> None:
    records = chain_of(["dep_a", "dep_a"])

    with pytest.raises(ValidationError) as info:
        seal(records[0], draft(2, deployment_id="dep_a"), MANAGER, deployment_prev=records[1])

    assert info.value.field == "deployment_prev"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time": datetime(2026, 1, 1)}, "time"),  # naive: refused, not guessed
        ({"action": "Release.Create"}, "action"),
        ({"action": "release"}, "action"),  # not dotted
        ({"actor": {"kind": "root", "id": "x"}}, "actor.kind"),
        ({"actor": {"kind": "system", "id": ""}}, "actor.id"),
        ({"outcome": "maybe"}, "outcome"),
        ({"target": "a\nb"}, "target"),
        ({"target": "\ud800"}, "target"),
        ({"details": {"x": "nul\x00byte"}}, "details"),
        ({"details": {"x": "\ud800"}}, "details"),
        ({"details": {"x": math.nan}}, "details"),
        ({"details": {"x": "y" * MAX_DETAILS_BYTES}}, "details"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_drafts_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    data = draft(0, deployment_id="dep_a").model_dump() | change

    with pytest.raises(ValidationError) as info:
        parse(AuditDraft, data)

    assert info.value.field == field


def test_a_stored_record_missing_its_deployment_chain_is_refused() -> None:
    (record,) = chain_of(["dep_a"])
    row = record.to_dict() | {"deployment_seq": None}

    with pytest.raises(ValidationError):
        parse_record(row)


def test_times_are_normalised_to_utc() -> None:
    local = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
    record = seal(None, draft(0).model_copy(update={"time": local}), MANAGER)
    same = seal(None, draft(0), MANAGER)

    assert parse_record(record.to_json()).hash == same.hash


# --- keys ---------------------------------------------------------------------------------------


def test_signatures_are_the_ones_openssl_makes() -> None:
    """The signer signs with libsodium; Ed25519 is deterministic, so any tool agrees."""
    signer = Signer.generate()
    openssl = Ed25519PrivateKey.from_private_bytes(signer.to_raw())
    for message in (b"", b"x", bytes(range(256)) * 4):
        assert signer.sign(message) == openssl.sign(message)
        assert signer.verifier.verify(signer.sign(message), message)


def test_a_signing_key_round_trips_through_pem_and_raw() -> None:
    signer = Signer.generate()

    assert Signer.from_pem(signer.to_pem()).key_id == signer.key_id
    assert Signer.from_pem(signer.to_pem().decode()).key_id == signer.key_id
    assert Signer.from_raw(signer.to_raw()).key_id == signer.key_id
    assert signer.to_pem().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_an_encrypted_pem_needs_its_password() -> None:
    signer = Signer.generate()
    pem = signer.to_pem(password=b"correct horse")

    assert b"ENCRYPTED" in pem
    assert Signer.from_pem(pem, password=b"correct horse").key_id == signer.key_id
    with pytest.raises(ValidationError) as info:
        Signer.from_pem(pem, password=b"wrong")
    assert info.value.field == "signing_key"


def test_the_public_key_round_trips_and_verifies_what_the_private_key_sealed() -> None:
    signer = Signer.generate()
    records = build_chain([draft(0), draft(1)], signer)
    published = signer.verifier.to_pem()

    assert published.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert verify_chain(records, Verifier.from_pem(published)).ok
    assert verify_chain(records, Verifier.from_raw(signer.verifier.to_raw())).ok


@pytest.mark.parametrize(
    "bad", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n", "-----BEGIN é"]
)
def test_garbage_is_not_a_signing_key(bad: bytes | str) -> None:
    with pytest.raises(ValidationError) as info:
        Signer.from_pem(bad)
    assert info.value.field == "signing_key"


def test_keys_of_another_algorithm_are_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    private_pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    with pytest.raises(ValidationError, match="Ed25519"):
        Signer.from_pem(private_pem)
    with pytest.raises(ValidationError, match="Ed25519"):
        Verifier.from_pem(public_pem)


def test_raw_keys_must_be_32_bytes() -> None:
    with pytest.raises(ValidationError):
        Signer.from_raw(b"short")
    with pytest.raises(ValidationError):
        Verifier.from_raw(b"short")


def test_reprs_never_show_key_material() -> None:
    signer = Signer.generate()
    raw_hex = signer.to_raw().hex()

    assert raw_hex not in repr(signer)
    assert signer.key_id in repr(signer)
    assert signer.key_id in repr(signer.verifier)


def test_seal_with_json_gives_the_records_own_canonical_text() -> None:
    """The text an append stores is exactly ``to_json()`` of the sealed record."""
    signer = Signer.generate()
    draft = AuditDraft(
        time=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        actor=Actor(kind=ActorKind.API_KEY, id="key_1", role="admin"),
        action="command.create",
        outcome=Outcome.SUCCEEDED,
        deployment_id="dep_1",
        target="cmd_1",
        details={"ratio": 2.0, "nested": {"b": [1, "é"], "a": None}, "flag": True},
    )
    first, first_text = seal_with_json(None, draft, signer)
    second, second_text = seal_with_json(first, draft, signer, deployment_prev=first)
    for record, text in ((first, first_text), (second, second_text)):
        assert text == record.to_json()
        assert parse_record(text) == record
    assert verify_chain([first_text, second_text], signer.verifier).ok
