"""The effective policy of a deployment: the vendor's policy intersected with the customer's.

Two parties restrict what the vendor may do in a customer's environment: the vendor's own admins
(the debug policy, :mod:`alien.manager.services.debug_policies`) and the customer, with the
deployment's own credentials (:mod:`alien.manager.services.policy`). What is enforced is the
intersection, computed here and nowhere else, so that no setting of the vendor's can widen what
the customer allowed: the stricter debug mode wins, the shorter TTL, the common channels, and
the customer's allowlists of commands and egress hosts. The customer's access switch, when off,
forbids everything. Pure: no I/O, exhaustively testable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from alien.manager.services.debug_policies import (
    MAX_TTL_LIMIT,
    Channel,
    DebugMode,
    PolicyView,
)


class CustomerDebugMode(enum.StrEnum):
    """What the customer allows for debug sessions (``alien-deploy policy set --debug``)."""

    ALLOWED = "allowed"
    APPROVAL = "approval"
    FORBIDDEN = "forbidden"


class Party(enum.StrEnum):
    """Who decides on an approval: the customer (deployment token) or a vendor approver."""

    CUSTOMER = "customer"
    VENDOR = "vendor"


ENV_CHANNEL = "env"
"""Environment injection into a debugged process: a channel only the customer names (the
vendor's policy has no say on it, so it is allowed unless the customer's channels leave it out)."""

CUSTOMER_CHANNELS = (*(c.value for c in Channel), ENV_CHANNEL)
CHANNEL_ALIASES = {"kubectl": Channel.KUBERNETES.value, "k8s": Channel.KUBERNETES.value}

_STRICTNESS = {DebugMode.ALLOWED: 0, DebugMode.APPROVAL_REQUIRED: 1, DebugMode.FORBIDDEN: 2}
_AS_VENDOR_MODE = {
    CustomerDebugMode.ALLOWED: DebugMode.ALLOWED,
    CustomerDebugMode.APPROVAL: DebugMode.APPROVAL_REQUIRED,
    CustomerDebugMode.FORBIDDEN: DebugMode.FORBIDDEN,
}


@dataclass(frozen=True)
class CustomerPolicyView:
    """The customer's policy as stored (``stored`` false: the defaults, which restrict nothing).

    ``None`` for a list or the TTL means the customer sets no limit there."""

    deployment_id: str
    access: bool = True
    debug: CustomerDebugMode = CustomerDebugMode.ALLOWED
    max_ttl_seconds: int | None = None
    channels: tuple[str, ...] | None = None
    egress_allow: tuple[str, ...] | None = None
    commands: tuple[str, ...] | None = None
    command_approval: bool = False
    stored: bool = False
    updated_at: datetime | None = None
    updated_by: str | None = None
    held_release: str | None = None


@dataclass(frozen=True)
class EffectivePolicy:
    """What is enforced. ``mode``/``max_ttl_seconds``/``allowed_channels`` read like the
    vendor's :class:`PolicyView`; ``approvers`` says who must approve a debug session;
    ``sources`` names, per limit, the party that set it (for error messages)."""

    deployment_id: str
    access: bool
    mode: DebugMode
    approvers: tuple[Party, ...]
    max_ttl_seconds: int
    allowed_channels: tuple[Channel, ...]
    env_channel: bool
    egress_allow: tuple[str, ...] | None
    commands: tuple[str, ...] | None
    command_approvers: tuple[Party, ...]
    sources: dict[str, Party] = field(default_factory=dict)

    @property
    def channels(self) -> tuple[str, ...]:
        """Every allowed channel name (the vendor's kinds, plus ``env`` when allowed)."""
        names = tuple(c.value for c in self.allowed_channels)
        return (*names, ENV_CHANNEL) if self.env_channel else names

    def allows_command(self, name: str) -> bool:
        return self.access and (self.commands is None or name in self.commands)

    def source(self, what: str) -> str:
        """Whose policy set a limit (``mode``, ``ttl``, ``channels``, ``commands``): ``"the
        customer's policy"``, or ``"the debug policy"`` (the vendor's, as it was always called)."""
        party = self.sources.get(what, Party.VENDOR)
        return "the customer's policy" if party is Party.CUSTOMER else "the debug policy"


def normalise_channel(name: str) -> str:
    """A channel name as stored (``kubectl`` → ``kubernetes``); ``ValueError`` if unknown."""
    value = CHANNEL_ALIASES.get(name.strip().lower(), name.strip().lower())
    if value not in CUSTOMER_CHANNELS:
        known = ", ".join([*CUSTOMER_CHANNELS, *CHANNEL_ALIASES])
        raise ValueError(f"unknown channel {name!r} (known: {known})")
    return value


def intersect(vendor: PolicyView, customer: CustomerPolicyView) -> EffectivePolicy:
    """The vendor's policy narrowed by the customer's; never wider than either."""
    sources: dict[str, Party] = {}
    customer_mode = _AS_VENDOR_MODE[customer.debug]
    if not customer.access:
        mode, sources["mode"] = DebugMode.FORBIDDEN, Party.CUSTOMER
    elif _STRICTNESS[customer_mode] > _STRICTNESS[vendor.mode]:
        mode, sources["mode"] = customer_mode, Party.CUSTOMER
    else:
        mode, sources["mode"] = vendor.mode, Party.VENDOR
    approvers: tuple[Party, ...] = ()
    if mode is DebugMode.APPROVAL_REQUIRED:
        approvers = tuple(
            party
            for party, wants in (
                (Party.CUSTOMER, customer.debug is CustomerDebugMode.APPROVAL),
                (Party.VENDOR, vendor.mode is DebugMode.APPROVAL_REQUIRED),
            )
            if wants
        )
    ttl = min(vendor.max_ttl_seconds, MAX_TTL_LIMIT)
    sources["ttl"] = Party.VENDOR
    if customer.max_ttl_seconds is not None and customer.max_ttl_seconds < ttl:
        ttl, sources["ttl"] = customer.max_ttl_seconds, Party.CUSTOMER
    channels = tuple(vendor.allowed_channels)
    sources["channels"] = Party.VENDOR
    env = True
    if customer.channels is not None:
        narrowed = tuple(c for c in channels if c.value in customer.channels)
        if narrowed != channels:
            sources["channels"] = Party.CUSTOMER
        channels = narrowed
        env = ENV_CHANNEL in customer.channels
    commands = customer.commands
    egress = customer.egress_allow
    if not customer.access:  # suspended: nothing at all
        channels, env, commands, egress = (), False, (), ()
        sources["channels"] = Party.CUSTOMER
    if commands is not None:
        sources["commands"] = Party.CUSTOMER
    return EffectivePolicy(
        deployment_id=vendor.deployment_id,
        access=customer.access,
        mode=mode,
        approvers=approvers,
        max_ttl_seconds=ttl,
        allowed_channels=channels,
        env_channel=env,
        egress_allow=egress,
        commands=commands,
        command_approvers=(Party.CUSTOMER,) if customer.command_approval else (),
        sources=sources,
    )
