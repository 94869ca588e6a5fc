"""Messages between a pull-model agent and the manager (pure: no I/O).

The agent dials out to the manager and keeps one WebSocket open (``/v1/agent/connect``); when a
WebSocket cannot be had it long-polls ``GET /v1/agent/next`` and posts to ``POST /v1/agent/status``.
Both carry exactly these messages, as JSON objects ``{"v": 1, "type": ..., ...}``:

agent → manager
    ``hello``      first message on a connection: agent version, what it runs now, capabilities.
    ``heartbeat``  liveness only; the manager records ``last_heartbeat``.
    ``status``     a lifecycle event the agent observed (``deploy_succeeded``, …) and/or detail;
                   the manager applies the event to the stored status with the state machine of
                   :mod:`alien.protocol.deployment`, which updates state, current / last-good
                   release and error.

manager → agent
    ``welcome``          answer to ``hello``: who the agent is (deployment id/name/group), how
                         often to heartbeat, and the deployment's status as the manager stores it
                         (so a restarted agent resumes where the record says it was).
    ``desired_release``  run this release: id, digests, size and where to download the package
                         (``package_url`` is relative to the manager's base URL). Sent at once
                         when a release targets the deployment, and again on every (re)connect
                         while the deployment's desired release is set, so nothing is lost when
                         the connection drops: the desired release lives in the manager's DB.
    ``error``            a message the agent sent was refused (unknown type, bad field, illegal
                         transition — then with the manager's ``status`` to resynchronise).

Remote commands (an agent that lists ``commands`` in ``hello.capabilities``; docs/API.md):

manager → agent
    ``command``          one delivery of a command: its :class:`CommandEnvelope`, the function
                         it is for (``target``) and a signed URL to upload a large result to.
    ``command_cancel``   stop working on a command you hold (cancelled, expired, lease lost).
    ``command_receipt``  the answer to a ``command_ack`` / ``command_renew`` /
                         ``command_response``: taken (with the lease's new expiry) or refused
                         (with the code saying why, e.g. ``STALE_LEASE``).

agent → manager
    ``command_ack``      take the offered command's lease (needed before renewing it).
    ``command_renew``    extend the lease while the handler runs.
    ``command_response`` the handler's :class:`CommandResponse` for one lease.

An agent reports the command names each function registered in ``status.detail["commands"]``
(``{"api": ["generate-report", ...]}``, see :data:`COMMANDS_DETAIL_KEY`); the manager then refuses
an unknown name at create time instead of after a round trip.

Remote debugging through the agent (an agent that lists ``debug_tunnels`` in
``hello.capabilities``; pull model, docs/API.md "Remote debugging"):

manager → agent
    ``tunnel_open``      a debug session's CLI connected: dial ``tunnel_path`` now (a second,
                         outbound WebSocket) with the deployment token and the one-time
                         ``credential``, and answer the tunnel streams the manager relays from
                         inside the environment, until the manager closes it.

Later protocol additions are new ``type`` values in the manager →
agent union; an agent advertises what it understands in ``hello.capabilities``. ``v`` is the
protocol version: a peer refuses a version it does not speak, and refuses unknown types and
malformed messages with a :class:`~alien.errors.ValidationError` whose ``field`` names the culprit.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from alien.errors import ValidationError
from alien.protocol.command_messages import (
    CommandEnvelope,
    CommandId,
    CommandResponse,
    HttpUrl,
    LeaseId,
    validate_command_name,
)
from alien.protocol.commands import CommandState
from alien.protocol.deployment import DeploymentEvent, DeploymentStatus
from alien.protocol.wire import ErrorMessage, ReleaseId, Timestamp, WireModel, parse, prefixed_id
from alien.stack.rules import ResourceId

PROTOCOL_VERSION = 1
MAX_DETAIL_BYTES = 64 * 1024

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128, strict=True)]
Capability = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,31}$", strict=True)]
Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$", strict=True)]
ErrorCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$", strict=True)]
DeploymentId = prefixed_id("dep")

#: Lifecycle events an agent may report; the others (``desired_release_set``,
#: ``retry_requested``) are the manager's to apply.
AGENT_EVENT_TYPES = frozenset(
    {
        "provision_started",
        "provisioned",
        "provision_failed",
        "deploy_started",
        "deploy_succeeded",
        "deploy_failed",
        "rollback_started",
        "rollback_succeeded",
        "rollback_failed",
        "delete_requested",
        "delete_failed",
        "deleted",
    }
)
ReleaseIdStrict = prefixed_id("rel")

AGENT_INSTANCE_HEADER = "Alien-Agent-Instance"
"""Sent by an agent with every request to the manager: a random id of its process, so the manager
serves a deployment through one agent at a time (:data:`AGENT_CONFLICT` for a second one)."""
AGENT_CONFLICT = "AGENT_CONFLICT"
"""The error code (409) refusing an agent while another instance serves its deployment."""
AGENT_INSTANCE_PATTERN = r"^ins_[0-9a-f]{24}$"


def new_agent_instance() -> str:
    """A fresh instance id for an agent process."""
    return f"ins_{secrets.token_hex(12)}"


CAPABILITY_COMMANDS = "commands"
"""What an agent lists in ``hello.capabilities`` to be sent ``command`` messages."""
COMMANDS_DETAIL_KEY = "commands"
"""The ``status.detail`` key holding the command names per function: ``{"api": ["a", "b"]}``."""
FunctionId = ResourceId
"""A function's resource id in the stack (the target of a command)."""

CAPABILITY_DEBUG_TUNNELS = "debug_tunnels"
"""What an agent lists in ``hello.capabilities`` to be sent ``tunnel_open`` messages."""
CAPABILITY_DEBUG_SPLICE = "debug_tunnel_splice"
"""Listed besides ``debug_tunnels`` by an agent that answers a spliced tunnel (``tunnel_open``
with ``splice``: it is the server of the CLI's own tunnel, see :mod:`alien.tunnel.splice`)."""
CAPABILITY_DEBUG_LIMITS = "debug_limits"
"""Listed besides ``debug_tunnels`` by an agent that applies a ``tunnel_open``'s ``limits``
(the customer's policy on channels and egress). A manager sends ``limits`` only to such an agent,
and refuses a session it cannot limit otherwise."""
DebugSessionId = prefixed_id("dbg")
TunnelPath = Annotated[
    str, StringConstraints(pattern=r"^/v1/agent/debug-tunnels/dbg_[A-Za-z0-9]{1,64}$", strict=True)
]


def agent_tunnel_path(session_id: str) -> str:
    """Where an agent dials its leg of ``session_id``'s tunnel (relative to the manager)."""
    return f"/v1/agent/debug-tunnels/{session_id}"


TunnelCredential = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{32,128}$", strict=True)
]


class _Message(WireModel):
    v: Literal[1] = PROTOCOL_VERSION


# --- agent → manager ---------------------------------------------------------------------------


class Hello(_Message):
    type: Literal["hello"] = "hello"
    agent_version: ShortText
    platform: ShortText | None = None
    current_release: ReleaseId | None = None
    capabilities: tuple[Capability, ...] = ()


class Heartbeat(_Message):
    type: Literal["heartbeat"] = "heartbeat"
    sent_at: Timestamp | None = None


class StatusReport(_Message):
    """A lifecycle step the agent took, and/or fresh free-form detail.

    ``event`` is a :data:`~alien.protocol.deployment.DeploymentEvent` the agent observed
    (``provision_started``, ``deploy_succeeded``, …; see ``AGENT_EVENT_TYPES``). The manager applies
    it to the deployment's stored status with :func:`alien.protocol.deployment.apply`, so an
    out-of-order report is refused (``ILLEGAL_TRANSITION``) instead of corrupting the record.
    ``detail`` (per-resource health, versions, …) replaces the stored detail when given.
    """

    type: Literal["status"] = "status"
    event: DeploymentEvent | None = None
    detail: dict[str, JsonValue] | None = None

    @field_validator("event")
    @classmethod
    def _agent_event(cls, value: Any) -> Any:
        if value is not None and value.type not in AGENT_EVENT_TYPES:
            raise ValueError(f"{value.type!r} is decided by the manager, not reported by an agent")
        return value

    @field_validator("detail")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, default=str)) > MAX_DETAIL_BYTES:
            raise ValueError(f"detail must serialise to at most {MAX_DETAIL_BYTES} bytes")
        if value is not None and COMMANDS_DETAIL_KEY in value:
            known_commands(value)  # refuse a malformed listing now, not at every command
        return value


def known_commands(detail: dict[str, Any] | None) -> dict[str, tuple[str, ...]] | None:
    """The command names per function an agent reported in ``detail["commands"]``.

    ``None`` when the agent did not report them (the manager then cannot refuse unknown names
    early; the handler side does). Raises ``ValueError`` for a listing of the wrong shape.
    """
    if not detail or COMMANDS_DETAIL_KEY not in detail:
        return None
    listing = detail[COMMANDS_DETAIL_KEY]
    if not isinstance(listing, dict):
        raise ValueError(f"detail.{COMMANDS_DETAIL_KEY} must map function ids to name lists")
    out: dict[str, tuple[str, ...]] = {}
    for function, names in listing.items():
        if not isinstance(names, list):
            raise ValueError(f"detail.{COMMANDS_DETAIL_KEY}.{function} must be a list of names")
        try:
            out[function] = tuple(sorted(validate_command_name(n) for n in names))
        except ValidationError:
            raise ValueError(
                f"detail.{COMMANDS_DETAIL_KEY}.{function} holds an invalid command name"
            ) from None
    return out


class CommandAck(_Message):
    """Take the offered command: its lease becomes the agent's (``dispatched`` → ``leased``).

    Needed before the first ``command_renew``; a handler that answers before its lease runs out
    may skip it (the response alone is accepted for the offered lease).
    """

    type: Literal["command_ack"] = "command_ack"
    command_id: CommandId
    lease_id: LeaseId


class CommandRenew(_Message):
    """Extend the lease of a running handler (answered with a ``command_receipt``)."""

    type: Literal["command_renew"] = "command_renew"
    command_id: CommandId
    lease_id: LeaseId


class CommandResponseMessage(_Message):
    """The handler's answer for one lease; a retry after a lost receipt is harmless."""

    type: Literal["command_response"] = "command_response"
    response: CommandResponse


AgentMessage = Hello | Heartbeat | StatusReport | CommandAck | CommandRenew | CommandResponseMessage
AGENT_COMMAND_MESSAGES = (CommandAck, CommandRenew, CommandResponseMessage)

# --- manager → agent ---------------------------------------------------------------------------


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    deployment_id: DeploymentId
    deployment_name: ShortText
    group: ShortText
    heartbeat_interval: float = Field(gt=0, le=3600)
    status: DeploymentStatus


class DesiredRelease(_Message):
    type: Literal["desired_release"] = "desired_release"
    release_id: ReleaseIdStrict
    manifest_digest: Digest
    package_digest: Digest
    package_size: int = Field(ge=0)
    package_url: Annotated[
        str, StringConstraints(pattern=r"^/v1/releases/rel_[A-Za-z0-9]+/package$")
    ]
    manifest: dict[str, JsonValue]


class ChannelError(_Message):
    """A refused agent message. On ``ILLEGAL_TRANSITION`` ``status`` is the manager's current view,
    so the agent can resynchronise instead of repeating the report."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: ErrorMessage
    field: ShortText | None = None
    status: DeploymentStatus | None = None


class CommandOffer(_Message):
    """One delivery of a command to the agent (``type`` ``command``).

    ``target`` is the function whose handler runs it. ``result_upload_url`` is a signed URL
    (valid until the command's deadline, no token needed) to ``PUT`` a result too large to travel
    inline; its answer is the :class:`~alien.protocol.command_messages.BlobRef` to send back as
    ``result_ref``.
    """

    type: Literal["command"] = "command"
    envelope: CommandEnvelope
    target: FunctionId
    result_upload_url: HttpUrl


class CommandCancel(_Message):
    """Stop working on a command: it was cancelled, expired, or this lease is no longer its
    current one. ``code`` says which (``COMMAND_CANCELLED``, ``COMMAND_EXPIRED``,
    ``STALE_LEASE``, ``MAX_ATTEMPTS``)."""

    type: Literal["command_cancel"] = "command_cancel"
    command_id: CommandId
    lease_id: LeaseId | None = None
    code: ErrorCode
    message: ErrorMessage


class CommandReceipt(_Message):
    """The answer to one ``command_ack`` / ``command_renew`` / ``command_response`` (``of``).

    ``ok``: it took effect (or, for a response, had already: ``code`` ``DUPLICATE_RESPONSE``);
    the agent may forget the message. Not ``ok``: refused for ``code`` (``STALE_LEASE``,
    ``COMMAND_CANCELLED``, ``COMMAND_EXPIRED``, ``COMMAND_FINISHED``, ``COMMAND_NOT_FOUND``,
    ``VALIDATION_ERROR``); stop the handler. ``lease_expires_at`` is the lease's expiry after an
    ack or renewal. ``state`` is the command's state as the manager stores it.
    """

    type: Literal["command_receipt"] = "command_receipt"
    command_id: CommandId
    lease_id: LeaseId
    of: Literal["ack", "renew", "response"]
    ok: bool
    state: CommandState | None = None
    lease_expires_at: Timestamp | None = None
    code: ErrorCode | None = None
    message: ErrorMessage | None = None


EgressPattern = Annotated[str, StringConstraints(min_length=1, max_length=260, strict=True)]
"""An allowlist entry (``host[:port]``, ``*.domain``, ``[v6]``): checked where it is applied."""


class DebugLimits(WireModel):
    """What the deployment's effective policy lets one debug session reach through the agent,
    on top of the agent's own configuration (which it can only narrow): ``channels`` — the tool
    families it may serve (``aws``, ``gcp``, ``kubernetes``, ``azure``, ``http`` for HTTP egress
    and ``CONNECT``); ``egress_allow`` — the customer's egress allowlist (``None``: no list of the
    customer's)."""

    channels: tuple[Annotated[str, StringConstraints(pattern=r"^[a-z]{1,32}$")], ...]
    egress_allow: tuple[EgressPattern, ...] | None = None


class TunnelOpen(_Message):
    """Dial a debug session's tunnel (``type`` ``tunnel_open``).

    The agent opens a WebSocket to ``tunnel_path`` (relative to the manager's base URL) with
    ``Authorization: Bearer <its deployment token>`` and ``Alien-Tunnel-Credential:
    <credential>``. The credential is good for one handshake, for this session only, and only
    for a few seconds; it never appears in ``repr`` or logs. ``expires_at`` is the session's
    expiry: the manager closes the tunnel then at the latest. ``splice`` (sent only to an agent
    listing :data:`CAPABILITY_DEBUG_SPLICE`): the manager passes the CLI's frames through
    unchanged, so the agent is the *server* of the tunnel and answers the streams the CLI opens;
    without it the manager is the server and opens a stream per CLI stream itself. ``limits``
    (sent only to an agent listing :data:`CAPABILITY_DEBUG_LIMITS`): the session may reach no
    more than these. ``leg``: ``"http"`` for an agent that long-polls (sent in a poll's
    answer): it opens the leg with ``POST <tunnel_path>/http`` and moves the tunnel's messages
    in requests (:mod:`alien.manager.debug_http_leg`); left out when ``"websocket"``, so an
    agent that predates it reads the message as before.
    """

    type: Literal["tunnel_open"] = "tunnel_open"
    session_id: DebugSessionId
    tunnel_path: TunnelPath
    credential: TunnelCredential = Field(repr=False)
    expires_at: Timestamp
    splice: bool = False
    limits: DebugLimits | None = None
    leg: Literal["websocket", "http"] = "websocket"

    @model_serializer(mode="wrap")
    def _leave_out_the_usual_leg(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("leg") == "websocket":
            del data["leg"]
        return data

    @field_validator("tunnel_path")
    @classmethod
    def _the_sessions_own_path(cls, value: str, info: ValidationInfo) -> str:
        """No other session's leg: what the agent dials is the session it was told of."""
        session_id = info.data.get("session_id")
        if session_id is not None and value != agent_tunnel_path(session_id):
            raise ValueError("tunnel_path is not the path of the session's own tunnel")
        return value


ManagerMessage = (
    Welcome
    | DesiredRelease
    | ChannelError
    | CommandOffer
    | CommandCancel
    | CommandReceipt
    | TunnelOpen
)


class HeldLease(WireModel):
    """A command lease an agent holds: it runs the command and has not been told to stop."""

    command_id: CommandId
    lease_id: LeaseId


MAX_HELD_LEASES = 1000
"""The most leases one lease request may list (an agent holds at most its concurrency)."""


class AgentLeaseRequest(WireModel):
    """Body of ``POST /v1/agent/commands/lease`` (optional): the leases the agent holds.

    The manager answers a ``command_cancel`` for each one that is no longer the command's
    current lease — worked out from the stored commands, so a cancel is not lost when the
    manager restarts between the change and the agent's next lease request."""

    held: tuple[HeldLease, ...] = Field(default=(), max_length=MAX_HELD_LEASES)


class AgentPoll(WireModel):
    """Body of ``GET /v1/agent/next``: the work waiting for the agent (empty on timeout)."""

    messages: tuple[Annotated[ManagerMessage, Field(discriminator="type")], ...] = ()


_AGENT_TYPES: dict[str, type[_Message]] = {
    "hello": Hello,
    "heartbeat": Heartbeat,
    "status": StatusReport,
    "command_ack": CommandAck,
    "command_renew": CommandRenew,
    "command_response": CommandResponseMessage,
}
_MANAGER_TYPES: dict[str, type[_Message]] = {
    "welcome": Welcome,
    "desired_release": DesiredRelease,
    "error": ChannelError,
    "command": CommandOffer,
    "command_cancel": CommandCancel,
    "command_receipt": CommandReceipt,
    "tunnel_open": TunnelOpen,
}


def parse_agent_message(data: str | bytes | dict[str, Any]) -> AgentMessage:
    """Validate a message an agent sent; ``ValidationError`` (with ``field``) when refused."""
    return _parse(data, _AGENT_TYPES)  # type: ignore[return-value]


def parse_manager_message(data: str | bytes | dict[str, Any]) -> ManagerMessage:
    """Validate a message the manager sent (the agent side of the channel)."""
    return _parse(data, _MANAGER_TYPES)  # type: ignore[return-value]


def encode(message: _Message) -> str:
    """The JSON text of a message, as sent on the wire."""
    return message.model_dump_json()


def _parse(data: str | bytes | dict[str, Any], types: dict[str, type[_Message]]) -> _Message:
    obj = _as_object(data)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ValidationError("message has no string 'type'", field="type")
    model = types.get(kind)
    if model is None:
        raise ValidationError(
            f"unknown message type {kind!r} (expected one of {', '.join(sorted(types))})",
            field="type",
            code="UNKNOWN_MESSAGE_TYPE",
        )
    version = obj.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ValidationError(
            f"unsupported protocol version {version!r} (this side speaks {PROTOCOL_VERSION})",
            field="v",
            code="UNSUPPORTED_PROTOCOL_VERSION",
        )
    return parse(model, obj)


def _as_object(data: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("message is not valid JSON", field="message") from None
    if not isinstance(obj, dict):
        raise ValidationError("message must be a JSON object", field="message")
    return obj
