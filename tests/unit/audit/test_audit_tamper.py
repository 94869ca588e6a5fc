"""Every kind of tampering with the stored log is reported, naming the record and the kind."""

from __future__ import annotations

from typing import Any

import pytest
from audit_chains import (
    ATTACKER,
    EDITABLE,
    MANAGER,
    chain_of,
    draft,
    edit,
    rehash,
    relink,
    resign,
    rows,
)

from alien.protocol.audit import (
    ChainHead,
    Problem,
    ProblemKind,
    Signer,
    seal,
    verify_chain,
)

K = ProblemKind
DEPLOYMENTS = ["dep_a", None, "dep_b", "dep_a", None, "dep_a", "dep_b", None]


@pytest.fixture
def stored() -> list[dict[str, Any]]:
    return rows(chain_of(DEPLOYMENTS))


def kinds(report_problems: tuple[Problem, ...]) -> list[tuple[int | None, ProblemKind]]:
    return [(problem.seq, problem.kind) for problem in report_problems]


def verify(items: list[Any], head: ChainHead | None = None) -> list[tuple[int | None, K]]:
    return kinds(verify_chain(items, MANAGER.verifier, expected_head=head).problems)


def head_of(stored: list[dict[str, Any]]) -> ChainHead:
    return ChainHead(seq=stored[-1]["seq"], hash=stored[-1]["hash"])


def test_the_untouched_log_verifies(stored: list[dict[str, Any]]) -> None:
    assert verify(stored, head_of(stored)) == []


@pytest.mark.parametrize("what", EDITABLE)
def test_an_edited_field_breaks_the_hash(stored: list[dict[str, Any]], what: str) -> None:
    stored[3] = edit(stored[3], what)

    problems = verify(stored)

    assert (stored[3]["seq"], K.HASH_MISMATCH) in problems


def test_an_edited_and_rehashed_record_fails_its_signature(stored: list[dict[str, Any]]) -> None:
    stored[3] = rehash(edit(stored[3], "details"))

    assert verify(stored) == [
        (4, K.BAD_SIGNATURE),
        (5, K.PREV_HASH_MISMATCH),
        (6, K.DEPLOYMENT_PREV_HASH_MISMATCH),
    ]


def test_rewriting_the_rest_of_the_log_without_the_key_fails_every_signature(
    stored: list[dict[str, Any]],
) -> None:
    # Edit record 4 and re-link everything after it: every link holds, no signature does.
    forged = relink([*stored[:3], edit(stored[3], "outcome"), *stored[4:]])

    assert forged[:3] == stored[:3]
    assert verify(forged) == [(seq, K.BAD_SIGNATURE) for seq in range(4, 9)]


def test_records_signed_with_another_key_are_unknown(stored: list[dict[str, Any]]) -> None:
    stored[2] = resign(edit(stored[2], "details"), ATTACKER)

    assert (3, K.UNKNOWN_KEY) in verify(stored)


def test_a_foreign_signature_claiming_our_key_is_bad(stored: list[dict[str, Any]]) -> None:
    stored[2] = resign(edit(stored[2], "details"), ATTACKER, claim=MANAGER.key_id)

    assert (3, K.BAD_SIGNATURE) in verify(stored)


def test_an_altered_signature_is_bad(stored: list[dict[str, Any]]) -> None:
    sig = stored[5]["signature"]
    stored[5]["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]

    assert verify(stored) == [(6, K.BAD_SIGNATURE)]


def test_a_removed_record_leaves_a_gap(stored: list[dict[str, Any]]) -> None:
    del stored[3]  # seq 4, dep_a's second record

    assert verify(stored) == [(5, K.SEQ_GAP), (6, K.DEPLOYMENT_SEQ_GAP)]


def test_swapped_records_are_out_of_order(stored: list[dict[str, Any]]) -> None:
    stored[1], stored[4] = stored[4], stored[1]

    problems = verify(stored)

    assert (5, K.SEQ_GAP) in problems
    assert (2, K.SEQ_ORDER) in problems


def test_a_duplicated_record_is_out_of_order(stored: list[dict[str, Any]]) -> None:
    stored.insert(5, stored[2])

    assert (3, K.SEQ_ORDER) in verify(stored)


def test_a_renumbered_record_breaks_its_hash(stored: list[dict[str, Any]]) -> None:
    del stored[3]
    for row in stored[3:]:
        row["seq"] -= 1

    assert (4, K.HASH_MISMATCH) in verify(stored)


def test_a_truncated_head_is_only_seen_against_the_published_head(
    stored: list[dict[str, Any]],
) -> None:
    head = head_of(stored)
    shortened = stored[:-2]

    # Alone, a shorter log is a valid log: that is why the manager publishes its head.
    assert verify(shortened) == []
    assert verify(shortened, head) == [(None, K.TRUNCATED)]


def test_a_forked_log_does_not_match_the_published_head(stored: list[dict[str, Any]]) -> None:
    head = head_of(stored)
    # Replace the last record by another, properly sealed one (e.g. by someone with the key
    # after the head was published): the chain verifies, the head does not match.
    prev = chain_of(DEPLOYMENTS)[-2]
    stored[-1] = seal(prev, draft(99), MANAGER).to_dict()

    assert verify(stored, head) == [(8, K.HEAD_MISMATCH)]


def test_a_removed_head_record_with_later_records_is_reported(stored: list[dict[str, Any]]) -> None:
    head = ChainHead(seq=5, hash=stored[4]["hash"])
    del stored[4]

    assert (None, K.HEAD_MISMATCH) in verify(stored, head)


def test_malformed_items_are_reported_and_verification_goes_on(
    stored: list[dict[str, Any]],
) -> None:
    stored[2] = {**stored[2], "hash": "not hex"}
    items: list[Any] = [*stored[:6], "{not json", *stored[6:]]

    problems = verify(items)

    assert (3, K.MALFORMED) in problems
    assert (None, K.MALFORMED) in problems
    assert (4, K.SEQ_GAP) in problems


def test_a_window_verifies_against_a_trusted_anchor(stored: list[dict[str, Any]]) -> None:
    anchor = ChainHead(seq=stored[3]["seq"], hash=stored[3]["hash"])

    report = verify_chain(stored[4:], MANAGER.verifier, anchor=anchor)
    wrong = verify_chain(stored[4:], MANAGER.verifier, anchor=ChainHead(seq=4, hash="1" * 64))
    late = verify_chain(stored[5:], MANAGER.verifier, anchor=anchor)

    assert report.ok, report.problems
    assert report.checked == 4
    assert report.head == head_of(stored)
    assert kinds(wrong.problems) == [(5, K.PREV_HASH_MISMATCH)]
    assert kinds(late.problems) == [(6, K.SEQ_GAP)]


def test_keys_can_rotate() -> None:
    records = chain_of(DEPLOYMENTS)
    new_key = Signer.generate()
    after = seal(records[-1], draft(20, deployment_id="dep_a"), new_key, deployment_prev=records[5])
    rotated = [*records, after]

    assert verify_chain(rotated, [MANAGER.verifier, new_key.verifier]).ok
    only_new = verify_chain(rotated, new_key.verifier)
    assert kinds(only_new.problems) == [(r.seq, K.UNKNOWN_KEY) for r in records]


def test_a_stale_deployment_prev_forks_the_deployment_chain() -> None:
    # A manager bug: the second dep_a record is sealed against nothing instead of the first.
    first = seal(None, draft(0, deployment_id="dep_a"), MANAGER)
    second = seal(first, draft(1, deployment_id="dep_a"), MANAGER)  # deployment_prev missing

    problems = kinds(verify_chain([first, second], MANAGER.verifier).problems)

    assert problems == [(2, K.DEPLOYMENT_SEQ_ORDER)]
