"""Property tests: random logs verify; any single tampering with them is always detected."""

from __future__ import annotations

import copy
from typing import Any

from audit_chains import (
    ATTACKER,
    EDITABLE,
    MANAGER,
    build_chain,
    draft,
    edit,
    rehash,
    relink,
    resign,
    rows,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alien.protocol.audit import (
    AuditRecord,
    ChainHead,
    parse_record,
    seal_with_json,
    verify_chain,
    verify_deployment_chain,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Anything JSON that storage keeps as is (NUL is refused by the model: PostgreSQL cannot store it).
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | text
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
details = st.dictionaries(text, json_values, max_size=4)
deployment = st.sampled_from(["dep_a", "dep_b", "dep_c", None])


@st.composite
def logs(draw: st.DrawFn, min_size: int = 1) -> list[dict[str, Any]]:
    entries = draw(st.lists(st.tuples(deployment, details), min_size=min_size, max_size=10))
    drafts = [draft(n, deployment_id=dep, details=d) for n, (dep, d) in enumerate(entries)]
    return rows(build_chain(drafts))


TAMPERINGS = (
    "edit",
    "edit_rehash",
    "edit_relink",
    "edit_resign",
    "edit_resign_claiming_our_key",
    "flip_signature",
    "delete",
    "swap",
    "duplicate",
    "truncate",
)


def tamper(draw: st.DrawFn, stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply one random tampering of a kind that has something to act on."""
    stored = copy.deepcopy(stored)
    kinds = [k for k in TAMPERINGS if k != "swap" or len(stored) > 1]
    kind = draw(st.sampled_from(kinds))
    i = draw(st.integers(0, len(stored) - 1))
    if kind.startswith("edit"):
        changed = edit(stored[i], draw(st.sampled_from(EDITABLE)))
        if kind == "edit":
            stored[i] = changed
        elif kind == "edit_rehash":
            stored[i] = rehash(changed)
        elif kind == "edit_relink":
            stored = relink([*stored[:i], changed, *stored[i + 1 :]])
        elif kind == "edit_resign":
            stored[i] = resign(changed, ATTACKER)
        else:
            stored[i] = resign(changed, ATTACKER, claim=MANAGER.key_id)
    elif kind == "flip_signature":
        sig = stored[i]["signature"]
        pos = draw(st.integers(0, len(sig) - 1))
        stored[i]["signature"] = sig[:pos] + ("0" if sig[pos] != "0" else "1") + sig[pos + 1 :]
    elif kind == "delete":
        del stored[i]
    elif kind == "swap":
        j = draw(st.integers(0, len(stored) - 2))
        j += j >= i  # any other index
        stored[i], stored[j] = stored[j], stored[i]
    elif kind == "duplicate":
        stored.insert(draw(st.integers(0, len(stored))), copy.deepcopy(stored[i]))
    else:  # truncate
        del stored[i:]
    return stored


@SETTINGS
@given(logs(min_size=0))
def test_untouched_logs_verify(stored: list[dict[str, Any]]) -> None:
    head = ChainHead(seq=stored[-1]["seq"], hash=stored[-1]["hash"]) if stored else None

    report = verify_chain(stored, MANAGER.verifier, expected_head=head)

    assert report.ok, report.problems
    assert report.checked == len(stored)


@SETTINGS
@given(st.lists(st.tuples(deployment, details), min_size=1, max_size=4))
def test_the_text_stored_with_a_seal_is_the_records_canonical_json(
    entries: list[tuple[str | None, dict[str, Any]]],
) -> None:
    """``seal_with_json`` spells the digested members once and splices ``hash`` and
    ``signature`` in: the result must be exactly the record's own canonical text."""
    prev: AuditRecord | None = None
    latest: dict[str, AuditRecord] = {}
    texts = []
    for n, (dep, extra) in enumerate(entries):
        item = draft(n, deployment_id=dep, details=extra)
        record, stored = seal_with_json(prev, item, MANAGER, deployment_prev=latest.get(dep or ""))
        assert stored == record.to_json()
        texts.append(stored)
        if dep:
            latest[dep] = record
        prev = record
    assert verify_chain(texts, MANAGER.verifier).ok


@SETTINGS
@given(logs(), st.data())
def test_any_single_tampering_is_detected(
    stored: list[dict[str, Any]], data: st.DataObject
) -> None:
    head = ChainHead(seq=stored[-1]["seq"], hash=stored[-1]["hash"])
    tampered = tamper(data.draw, stored)

    report = verify_chain(tampered, MANAGER.verifier, expected_head=head)

    assert not report.ok


@SETTINGS
@given(logs(), st.data())
def test_any_single_tampering_of_a_deployment_view_is_detected(
    stored: list[dict[str, Any]], data: st.DataObject
) -> None:
    present = sorted({row["deployment_id"] for row in stored if row["deployment_id"]})
    if not present:
        return
    dep = data.draw(st.sampled_from(present))
    mine = [row for row in stored if row["deployment_id"] == dep]
    head = parse_record(mine[-1]).deployment_head
    assert verify_deployment_chain(mine, MANAGER.verifier, dep, expected_head=head).ok

    tampered = tamper(data.draw, mine)

    assert not verify_deployment_chain(tampered, MANAGER.verifier, dep, expected_head=head).ok
