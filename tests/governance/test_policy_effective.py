"""The effective policy is the intersection of the vendor's and the customer's: never wider than
either, whatever each sets (pure, exhaustively checked with hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.manager.services.debug_policies import Channel, DebugMode, PolicyView
from alien.manager.services.policy_effective import (
    CUSTOMER_CHANNELS,
    CustomerDebugMode,
    CustomerPolicyView,
    Party,
    intersect,
    normalise_channel,
)

STRICTNESS = {DebugMode.ALLOWED: 0, DebugMode.APPROVAL_REQUIRED: 1, DebugMode.FORBIDDEN: 2}
AS_VENDOR = {
    CustomerDebugMode.ALLOWED: DebugMode.ALLOWED,
    CustomerDebugMode.APPROVAL: DebugMode.APPROVAL_REQUIRED,
    CustomerDebugMode.FORBIDDEN: DebugMode.FORBIDDEN,
}


def vendor(
    mode: DebugMode = DebugMode.ALLOWED,
    ttl: int = 3600,
    channels: tuple[Channel, ...] = tuple(Channel),
) -> PolicyView:
    return PolicyView("dep_x", mode, ttl, channels, stored=True)


def test_the_customers_stricter_values_win_over_a_wider_vendor() -> None:
    wide = vendor(DebugMode.ALLOWED, ttl=12 * 3600)
    customer = CustomerPolicyView(
        "dep_x",
        debug=CustomerDebugMode.APPROVAL,
        max_ttl_seconds=600,
        channels=("aws", "kubernetes"),
        commands=("echo",),
    )
    effective = intersect(wide, customer)
    assert effective.mode is DebugMode.APPROVAL_REQUIRED
    assert effective.approvers == (Party.CUSTOMER,)
    assert effective.max_ttl_seconds == 600
    assert effective.allowed_channels == (Channel.AWS, Channel.KUBERNETES)
    assert not effective.env_channel
    assert effective.allows_command("echo") and not effective.allows_command("noop")
    assert effective.source("ttl") == "the customer's policy"


def test_both_parties_approve_when_both_ask_for_it_and_the_vendor_alone_otherwise() -> None:
    both = intersect(
        vendor(DebugMode.APPROVAL_REQUIRED),
        CustomerPolicyView("dep_x", debug=CustomerDebugMode.APPROVAL),
    )
    assert both.approvers == (Party.CUSTOMER, Party.VENDOR)
    vendor_only = intersect(vendor(DebugMode.APPROVAL_REQUIRED), CustomerPolicyView("dep_x"))
    assert vendor_only.approvers == (Party.VENDOR,)
    assert vendor_only.source("mode") == "the debug policy"


def test_the_access_switch_forbids_everything() -> None:
    effective = intersect(vendor(), CustomerPolicyView("dep_x", access=False))
    assert effective.mode is DebugMode.FORBIDDEN and not effective.access
    assert not effective.allows_command("echo")
    assert effective.channels == () and effective.commands == () and effective.egress_allow == ()
    assert effective.source("mode") == "the customer's policy"


def test_channel_names_have_aliases_and_unknown_ones_are_refused() -> None:
    assert normalise_channel("kubectl") == "kubernetes"
    assert normalise_channel(" AWS ") == "aws"
    with pytest.raises(ValueError, match="unknown channel 'ssh'"):
        normalise_channel("ssh")


vendor_policies = st.builds(
    vendor,
    st.sampled_from(list(DebugMode)),
    st.integers(1, 12 * 3600),
    st.lists(st.sampled_from(list(Channel)), unique=True).map(tuple),
)
customer_policies = st.builds(
    CustomerPolicyView,
    st.just("dep_x"),
    access=st.booleans(),
    debug=st.sampled_from(list(CustomerDebugMode)),
    max_ttl_seconds=st.none() | st.integers(1, 12 * 3600),
    channels=st.none() | st.lists(st.sampled_from(CUSTOMER_CHANNELS), unique=True).map(tuple),
    commands=st.none() | st.lists(st.sampled_from(["a", "b", "c"]), unique=True).map(tuple),
    command_approval=st.booleans(),
)


@given(vendor_policies, customer_policies, st.sampled_from(["a", "b", "c"]))
def test_the_effective_policy_is_never_wider_than_either(
    v: PolicyView, c: CustomerPolicyView, command: str
) -> None:
    e = intersect(v, c)
    assert STRICTNESS[e.mode] >= STRICTNESS[v.mode]
    assert STRICTNESS[e.mode] >= STRICTNESS[AS_VENDOR[c.debug]]
    assert e.max_ttl_seconds <= v.max_ttl_seconds
    assert c.max_ttl_seconds is None or e.max_ttl_seconds <= c.max_ttl_seconds
    assert set(e.allowed_channels) <= set(v.allowed_channels)
    assert c.channels is None or set(e.channels) <= set(c.channels)
    if e.allows_command(command):
        assert c.access and (c.commands is None or command in c.commands)
    if not c.access:
        assert e.mode is DebugMode.FORBIDDEN and not e.env_channel
    if e.mode is DebugMode.APPROVAL_REQUIRED:
        assert e.approvers, "someone must approve"
        assert (Party.CUSTOMER in e.approvers) == (c.debug is CustomerDebugMode.APPROVAL)
        assert (Party.VENDOR in e.approvers) == (v.mode is DebugMode.APPROVAL_REQUIRED)
