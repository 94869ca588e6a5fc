"""A customer verifies their deployment's records alone, without anyone else's."""

from __future__ import annotations

from typing import Any

import pytest
from audit_chains import MANAGER, chain_of, edit, rehash, relink, rows

from alien.protocol.audit import ChainHead, ProblemKind, verify_deployment_chain

K = ProblemKind
DEPLOYMENTS = ["dep_a", "dep_b", None, "dep_a", "dep_b", "dep_a", None, "dep_a"]


@pytest.fixture
def everything() -> list[dict[str, Any]]:
    return rows(chain_of(DEPLOYMENTS))


def view(stored: list[dict[str, Any]], deployment: str = "dep_a") -> list[dict[str, Any]]:
    return [row for row in stored if row["deployment_id"] == deployment]


def head_of(view_rows: list[dict[str, Any]]) -> ChainHead:
    return ChainHead(seq=view_rows[-1]["deployment_seq"], hash=view_rows[-1]["hash"])


def verify(
    view_rows: list[dict[str, Any]], head: ChainHead | None = None, deployment: str = "dep_a"
) -> list[tuple[int | None, ProblemKind]]:
    report = verify_deployment_chain(view_rows, MANAGER.verifier, deployment, expected_head=head)
    return [(problem.seq, problem.kind) for problem in report.problems]


def test_a_deployments_view_verifies_on_its_own(everything: list[dict[str, Any]]) -> None:
    mine = view(everything)

    report = verify_deployment_chain(mine, MANAGER.verifier, "dep_a", expected_head=head_of(mine))

    assert report.ok, report.problems
    assert report.checked == 4
    assert [row["seq"] for row in mine] == [1, 4, 6, 8]
    assert report.head == ChainHead(seq=4, hash=mine[-1]["hash"])


def test_other_deployments_records_do_not_matter(everything: list[dict[str, Any]]) -> None:
    # Tampering with dep_b's records (or removing them) is dep_b's problem, not dep_a's.
    everything[1] = edit(everything[1], "details")
    del everything[4]

    assert verify(view(everything)) == []
    assert verify(view(everything, "dep_b"), deployment="dep_b") == [(2, K.HASH_MISMATCH)]


def test_an_edited_record_in_the_view_is_found(everything: list[dict[str, Any]]) -> None:
    mine = view(everything)
    mine[1] = edit(mine[1], "outcome")

    assert verify(mine) == [(4, K.HASH_MISMATCH)]


def test_a_relinked_view_fails_its_signatures(everything: list[dict[str, Any]]) -> None:
    mine = view(everything)
    forged = relink([mine[0], edit(mine[1], "details"), *mine[2:]])

    assert verify(forged) == [(4, K.BAD_SIGNATURE), (6, K.BAD_SIGNATURE), (8, K.BAD_SIGNATURE)]


def test_a_removed_record_leaves_a_gap_in_the_view(everything: list[dict[str, Any]]) -> None:
    mine = view(everything)
    del mine[1]

    assert verify(mine) == [(6, K.DEPLOYMENT_SEQ_GAP)]


def test_swapped_records_in_the_view_are_out_of_order(everything: list[dict[str, Any]]) -> None:
    mine = view(everything)
    mine[1], mine[2] = mine[2], mine[1]

    problems = verify(mine)

    assert (6, K.DEPLOYMENT_SEQ_GAP) in problems
    assert (4, K.SEQ_ORDER) in problems
    assert (4, K.DEPLOYMENT_SEQ_ORDER) in problems


def test_a_foreign_record_in_the_view_is_reported(everything: list[dict[str, Any]]) -> None:
    mine = view(everything)
    mine.insert(1, everything[1])  # dep_b's

    assert verify(mine) == [(2, K.WRONG_DEPLOYMENT)]


def test_a_record_moved_to_another_deployment_breaks_its_hash(
    everything: list[dict[str, Any]],
) -> None:
    mine = view(everything)
    moved = rehash(dict(everything[1], deployment_id="dep_a"))  # dep_b's record relabelled
    mine.insert(1, moved)

    assert (2, K.BAD_SIGNATURE) in verify(mine)


def test_a_truncated_view_is_seen_against_its_published_head(
    everything: list[dict[str, Any]],
) -> None:
    mine = view(everything)
    head = head_of(mine)

    assert verify(mine[:-1]) == []
    assert verify(mine[:-1], head) == [(None, K.TRUNCATED)]
    assert verify(mine[:-1], ChainHead(seq=3, hash="1" * 64)) == [(6, K.HEAD_MISMATCH)]


def test_a_view_window_continues_from_an_anchor(everything: list[dict[str, Any]]) -> None:
    mine = view(everything)
    anchor = ChainHead(seq=mine[1]["deployment_seq"], hash=mine[1]["hash"])

    report = verify_deployment_chain(mine[2:], MANAGER.verifier, "dep_a", anchor=anchor)

    assert report.ok, report.problems
    assert report.head == head_of(mine)
