"""The manager's tables (SQLAlchemy 2.x declarative).

The schema itself is created and evolved only by the Alembic migrations in ``migrations/``; these
classes must match them (a test compares the two). Secrets are never stored: token tables hold a
lookup id and a sha256 hash (see :mod:`alien.manager.tokens`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from alien.manager.db import UTCDateTime

NAME_LEN = 63


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ApiKey(Base):
    """A vendor-side key. ``role`` is admin|operator|debugger|viewer (see ``auth.ROLE_ACTIONS``)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(40))
    revoked_at: Mapped[datetime | None]
    # Confined to the groups in ``api_key_groups`` (migration 0004_roles). A flag, not "has
    # rows": a scoped key whose last group is deleted must see nothing, not everything.
    group_scoped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiKeyGroup(Base):
    """One deployment group a scoped API key may see and act on."""

    __tablename__ = "api_key_groups"

    api_key_id: Mapped[str] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class GroupToken(Base):
    """Onboards deployments into one group, and can do nothing else."""

    __tablename__ = "group_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(40))
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    use_count: Mapped[int] = mapped_column(Integer, default=0)


class Release(Base):
    """Immutable once written: a stack manifest plus a code package, and whom it was sent to."""

    __tablename__ = "releases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stack_name: Mapped[str] = mapped_column(String(200))
    manifest: Mapped[str] = mapped_column(
        Text
    )  # canonical JSON, byte-identical to the digest input
    manifest_digest: Mapped[str] = mapped_column(String(80))
    package_digest: Mapped[str] = mapped_column(String(80))
    package_size: Mapped[int] = mapped_column(BigInteger)
    targets: Mapped[dict[str, Any]]  # the request's target spec, as given
    # Denormalised from ``targets`` so onboarding can find "the newest release for all / for my
    # group" with a plain indexed query on every database.
    target_type: Mapped[str] = mapped_column(String(16))
    target_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"), index=True
    )
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(index=True)
    created_by: Mapped[str | None] = mapped_column(String(40))


class BlobGroup(Base):
    """A deployment group whose scoped API key uploaded this package blob (migration 0007).

    A key scoped to groups may see and release only the blobs uploaded within its groups; an
    unscoped upload adds no row, and a blob without rows (every blob stored before 0007
    included) is visible to unscoped keys only. No index on ``group_id``: the only query by
    group is the cascade when a group is deleted, which is rare and only done while it is empty.
    """

    __tablename__ = "blob_groups"

    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("group_id", "name", name="uq_deployments_group_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    # The DeploymentStatus of alien.protocol.deployment, one column per field.
    state: Mapped[str] = mapped_column(String(32))
    provisioned: Mapped[bool] = mapped_column(Boolean, default=False)
    desired_release_id: Mapped[str | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    current_release_id: Mapped[str | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    last_good_release_id: Mapped[str | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    target_release_id: Mapped[str | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    failed_release_id: Mapped[str | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    error: Mapped[str | None] = mapped_column(Text)
    last_heartbeat_at: Mapped[datetime | None]
    status_detail: Mapped[dict[str, Any]]
    deployment_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    agent_version: Mapped[str | None] = mapped_column(String(64))
    onboarded_with: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DeploymentIdentity(Protocol):
    """What most checks need of a deployment: a :class:`Deployment` row, or a cached copy of the
    fields they read (see :mod:`alien.manager.row_cache`)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


class DeploymentToken(Base):
    """The agent's credential: reaches its own deployment and nothing else."""

    __tablename__ = "deployment_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ReleaseTarget(Base):
    """Which deployments a release was assigned to (at creation, or when one onboarded later).

    This is also what lets a deployment token download that release's package.
    """

    __tablename__ = "release_targets"

    release_id: Mapped[str] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True
    )
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    assigned_at: Mapped[datetime]


# --- remote commands (migration 0002_commands) -----------------------------------------------


class Command(Base):
    """One remote command: what was asked, of whom, and where its lifecycle is.

    The lifecycle columns are the :class:`~alien.protocol.commands.CommandRecord` of the protocol
    layer, one column each; every change goes through its pure functions (``dispatch``,
    ``lease``, ``respond``, ``tick``, …). ``wakeup_at`` is ``next_wakeup(record)``: the durable
    sweeper's index of what time will change next (NULL once the command ended).
    ``params`` holds inline params (≤ 256 KiB); larger ones are a blob named by
    ``params_sha256``/``params_size``. ``request_digest`` fingerprints what the caller asked so a
    retry with the same ``idempotency_key`` can be told from a different request.
    """

    __tablename__ = "commands"
    __table_args__ = (
        UniqueConstraint("deployment_id", "idempotency_key", name="uq_commands_idempotency"),
        Index("ix_commands_deployment_state", "deployment_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    command: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(NAME_LEN))
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    deadline: Mapped[datetime]
    lease_id: Mapped[str | None] = mapped_column(String(72))
    lease_expires_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    wakeup_at: Mapped[datetime | None] = mapped_column(index=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    params_sha256: Mapped[str | None] = mapped_column(String(64))
    params_size: Mapped[int | None] = mapped_column(BigInteger)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_digest: Mapped[str | None] = mapped_column(String(64))
    traceparent: Mapped[str | None] = mapped_column(String(55))
    created_by: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime]


class CommandPayload(Base):
    """A large params or result document in the command blob store, and whom it belongs to.

    Params are uploaded by a caller for one deployment before the command exists (``command_id``
    NULL); results through a signed URL bound to one command and one of its leases
    (``lease_id``, migration 0008). A command may only reference a payload bound to it (or, for
    params, to its deployment), so nobody can have another deployment's data shipped to an agent
    by guessing a digest; a response's ``result_ref`` only a result uploaded under its own
    lease, so no attempt's answer names what another attempt uploaded.
    """

    __tablename__ = "command_payloads"
    __table_args__ = (Index("ix_command_payloads_lookup", "deployment_id", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    command_id: Mapped[str | None] = mapped_column(
        ForeignKey("commands.id", ondelete="CASCADE"), index=True
    )
    lease_id: Mapped[str | None] = mapped_column(String(72))
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(40))


# --- remote debugging (migration 0003_debug_sessions) ----------------------------------------


class AwsDeploymentConfig(Base):
    """How the manager reaches a push-model AWS deployment: the role it assumes and where.

    ``external_id`` is the confused-deputy guard the customer put on the role's trust policy; it is
    not a secret, but it is never shown back in full either (only whether one is set).
    """

    __tablename__ = "aws_deployment_configs"

    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    region: Mapped[str] = mapped_column(String(32))
    role_arn: Mapped[str] = mapped_column(String(2048))
    external_id: Mapped[str | None] = mapped_column(String(1224))
    endpoint_url: Mapped[str | None] = mapped_column(String(2048))
    allowed_services: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DebugPolicy(Base):
    """A deployment's debug policy; a deployment without a row has the default policy."""

    __tablename__ = "debug_policies"

    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(32))
    max_ttl_seconds: Mapped[int] = mapped_column(Integer)
    allowed_channels: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(40))


class DebugSession(Base):
    """One debug session and its token (hash only). Rows are never deleted: they are the record
    of who debugged what; ``deployment_ref`` keeps the name after the deployment is gone."""

    __tablename__ = "debug_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    deployment_id: Mapped[str | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="SET NULL"), index=True
    )
    deployment_ref: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(32), index=True)
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(40))
    end_reason: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    request_count: Mapped[int] = mapped_column(Integer, default=0)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)


class StoredAuditRecord(Base):
    """One sealed audit record (:mod:`alien.protocol.audit`): ``record`` is its canonical JSON,
    verbatim, so the hash chain verifies from the stored text alone; the other columns repeat
    what queries filter on. ``seq`` is assigned by sealing (1, 2, … without gaps), not by the
    database. Appends are serialised (see :mod:`alien.manager.services.audit`)."""

    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(128), index=True)
    deployment: Mapped[str | None] = mapped_column(String(128), index=True)
    target: Mapped[str | None] = mapped_column(String(512), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]]
    hash: Mapped[str] = mapped_column(String(64))
    record: Mapped[str] = mapped_column(Text)


# --- access governance (migration 0005_governance) -------------------------------------------


class CustomerPolicy(Base):
    """What the customer allows the vendor on their deployment, set with the deployment's own
    token (``alien-deploy policy set``). A deployment without a row allows what the vendor's
    own policy allows. ``NULL`` lists mean "no restriction of the customer's"; ``access`` false
    suspends every vendor access at once. ``held_release_id`` is the newest release the vendor
    sent while access was off: it is delivered when access comes back."""

    __tablename__ = "customer_policies"

    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    access: Mapped[bool] = mapped_column(Boolean)
    debug_mode: Mapped[str] = mapped_column(String(16))
    max_ttl_seconds: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[list[str] | None] = mapped_column(JSON)
    egress_allow: Mapped[list[str] | None] = mapped_column(JSON)
    commands: Mapped[list[str] | None] = mapped_column(JSON)
    command_approval: Mapped[bool] = mapped_column(Boolean)
    held_release_id: Mapped[str | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(40))


class Approval(Base):
    """The approval a debug session or a command waits for: which parties must approve
    (the customer, a vendor approver, or both), what each decided, and by whom."""

    __tablename__ = "approvals"

    subject_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(16))
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    requested_by: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    need_customer: Mapped[bool] = mapped_column(Boolean)
    need_vendor: Mapped[bool] = mapped_column(Boolean)
    customer_decision: Mapped[str | None] = mapped_column(String(16))
    customer_by: Mapped[str | None] = mapped_column(String(40))
    vendor_decision: Mapped[str | None] = mapped_column(String(16))
    vendor_by: Mapped[str | None] = mapped_column(String(40))
    grant_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
