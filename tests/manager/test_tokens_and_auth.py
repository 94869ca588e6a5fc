"""Token formats and the authorisation table (pure: no database, no process)."""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.errors import Forbidden, NotFound, Unauthenticated, ValidationError
from alien.manager import ids, tokens
from alien.manager.auth import (
    DEPLOYMENT_TOKEN_ACTIONS,
    ROLE_ACTIONS,
    Action,
    Principal,
    Role,
    authorize,
    bearer_token,
)
from alien.manager.tokens import TokenKind


@pytest.mark.parametrize("kind", list(TokenKind))
def test_issued_tokens_parse_back_and_verify(kind: TokenKind) -> None:
    issued = tokens.issue(kind)
    assert issued.value.startswith(f"ax_{kind.value}_")
    parsed = tokens.parse(issued.value)
    assert parsed is not None and (parsed.kind, parsed.lookup) == (kind, issued.lookup)
    assert tokens.matches(issued.value, issued.hash)
    assert not tokens.matches(issued.value + "x", issued.hash)
    assert issued.value not in issued.hash  # only the hash is stored


def test_tokens_carry_256_random_bits() -> None:
    secret = tokens.issue(TokenKind.API_KEY).value.split("_", 3)[3]
    assert len(secret) >= 43  # 32 bytes, URL-safe base64
    assert len({tokens.issue(TokenKind.GROUP).value for _ in range(50)}) == 50


@given(st.text(max_size=120))
def test_parse_never_raises_on_garbage(text: str) -> None:
    parsed = tokens.parse(text)
    assert parsed is None or parsed.value == text


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ax_key_",
        "ax_key_0123456789abcdef",
        "ax_key_0123456789ABCDEF_" + "x" * 43,
        "ax_key_0123456789abcdef_short",
        "ax_nope_0123456789abcdef_" + "x" * 43,
    ],
)
def test_malformed_tokens_are_not_ours(value: str) -> None:
    assert tokens.parse(value) is None


def test_parse_strict_names_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        tokens.parse_strict(tokens.issue(TokenKind.GROUP).value, TokenKind.API_KEY, field="X")
    assert err.value.field == "X"


def test_ids_are_prefixed_sortable_and_unique() -> None:
    made = [ids.new_id("dep") for _ in range(200)]
    assert len(set(made)) == 200
    assert all(ids.has_prefix(i, "dep") and "/" not in i for i in made)
    assert not ids.has_prefix(made[0], "rel")
    with pytest.raises(ValueError):
        ids.new_id("nope")


def test_ids_stay_unique_across_random_refills_and_threads() -> None:
    """The random bits are read from the OS in blocks: no block's bytes are handed out twice,
    whichever thread asks (10,000 ids span dozens of refills)."""
    made: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [ids.new_id("cmd") for _ in range(2500)]
        with lock:
            made.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == len(made) == 10_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_repeats_its_parents_random_bits() -> None:
    ids.new_id("cmd")  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id's random part, then leave at once
        os.write(write, ids.new_id("cmd")[-16:].encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert child != ids.new_id("cmd")[-16:]


def test_bearer_header_parsing() -> None:
    assert bearer_token(None) is None
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in ("Basic abc", "Bearer", "abc"):
        with pytest.raises(Unauthenticated):
            bearer_token(bad)


def _key(role: Role) -> Principal:
    return Principal(kind=TokenKind.API_KEY, id="key_x", role=role)


GROUP = Principal(kind=TokenKind.GROUP, id="gtk_x", group_id="grp_x")
AGENT = Principal(kind=TokenKind.DEPLOYMENT, id="dtk_x", deployment_id="dep_a")


@pytest.mark.parametrize("action", list(Action))
def test_authorize_follows_the_tables(action: Action) -> None:
    with pytest.raises(Unauthenticated):
        authorize(None, action)
    for role in Role:
        if action in ROLE_ACTIONS[role]:
            assert authorize(_key(role), action).role is role
        else:
            with pytest.raises(Forbidden):
                authorize(_key(role), action)
    if action is Action.ONBOARD:
        assert authorize(GROUP, action) is GROUP
    else:
        with pytest.raises(Forbidden):
            authorize(GROUP, action)
    if action in DEPLOYMENT_TOKEN_ACTIONS:
        assert authorize(AGENT, action) is AGENT
        assert authorize(AGENT, action, deployments=["dep_a", "dep_b"]) is AGENT
        with pytest.raises(Forbidden):
            authorize(AGENT, action, deployments=["dep_b"])
        missing = NotFound("no such thing")
        with pytest.raises(NotFound) as refused:
            authorize(AGENT, action, deployments=["dep_b"], missing=missing)
        assert refused.value is missing, "another deployment's resource is as if absent"
    else:
        with pytest.raises(Forbidden):
            authorize(AGENT, action, deployments=["dep_a"])
        with pytest.raises(Forbidden):
            authorize(AGENT, action, deployments=["dep_b"], missing=NotFound("no such thing"))


def test_only_admins_manage_keys_and_nobody_vendor_side_onboards() -> None:
    assert [r for r in Role if Action.KEYS_MANAGE in ROLE_ACTIONS[r]] == [Role.ADMIN]
    assert all(Action.ONBOARD not in ROLE_ACTIONS[r] for r in Role)
    assert all(Action.AGENT not in ROLE_ACTIONS[r] for r in Role)
