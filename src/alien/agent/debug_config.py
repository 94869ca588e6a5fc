"""The customer's ``<state-dir>/debug.json``: what a pull-model debug session may reach.

Read again for every session (edits apply to the next one) and checked whole before anything is
served: a bad field is a ``ValidationError`` naming it, and the session is not opened. The parts:
``aws`` (re-signed with the agent's identity), ``gcp`` (Google APIs with the agent's token),
``kubernetes`` (the cluster's API with the agent's service account), ``azure`` (one storage
account's blobs, signed with its key), ``http`` (egress to an allowlist); docs/API.md, "Pull
model", has the format.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from alien.agent.state import StateDir
from alien.errors import ValidationError
from alien.platforms.aws.endpoints import AwsEndpointPolicy
from alien.platforms.azure.upstream import BlobEndpoint, read_account_key
from alien.platforms.kubernetes.upstream import IN_CLUSTER_CA, IN_CLUSTER_TOKEN, in_cluster_server
from alien.protocol.debug_offer import (
    AwsOffer,
    AzureOffer,
    DebugOffer,
    GcpOffer,
    HttpOffer,
    KubernetesOffer,
)
from alien.tunnel.forward import HostAllowlist, endpoint_base

CONFIG_FILE = "debug.json"

_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
_PROJECT = r"^[a-z0-9][a-z0-9.:-]{0,99}$"
_ACCOUNT = r"^[a-z0-9]{3,24}$"

Name = Annotated[str, StringConstraints(pattern=_NAME, strict=True)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsDebugConfig(_Config):
    """AWS re-signed with the agent's identity. ``role_arn``: assume this role (with boto3's
    default chain) per session; without it the chain's own credentials sign. ``endpoint_url``
    sends every AWS call (STS included) elsewhere: an emulator, a VPC endpoint."""

    region: Name
    allowed_services: tuple[Name, ...] = Field(min_length=1)
    role_arn: str | None = None
    external_id: str | None = None
    endpoint_url: str | None = None


class HttpDebugConfig(_Config):
    """HTTP egress to ``allow`` (see :class:`~alien.tunnel.forward.HostAllowlist`)."""

    allow: tuple[str, ...] = Field(min_length=1)


class GcpDebugConfig(_Config):
    """Google APIs called with the agent's own access token. ``project``: what ``gcloud`` is
    set to; ``allowed_apis``: the first labels of ``<api>.googleapis.com``; ``endpoints``: where
    some of them are served instead (``scheme://host[:port]``: a private endpoint, an emulator);
    ``credentials``: ``metadata`` (the instance's service account), ``token_file`` (the token in
    the file ``token_file`` names, kept fresh by something else), or ``none`` (send no token)."""

    project: Annotated[str, StringConstraints(pattern=_PROJECT, strict=True)]
    allowed_apis: tuple[Name, ...] = Field(min_length=1)
    endpoints: dict[Name, str] = Field(default_factory=dict)
    credentials: Literal["metadata", "token_file", "none"] = "metadata"
    token_file: str | None = Field(default=None, min_length=1)


class KubernetesDebugConfig(_Config):
    """The cluster's API called with the agent's service account. Every field defaults to the
    pod's in-cluster configuration: ``server`` from ``KUBERNETES_SERVICE_HOST``/``_PORT``,
    ``token_file`` and ``ca_file`` from the service account mount (``ca_file: null`` trusts the
    system's CAs); ``namespace`` is where ``kubectl`` starts."""

    server: str | None = None
    token_file: str = Field(default=IN_CLUSTER_TOKEN, min_length=1)
    ca_file: str | None = Field(default=IN_CLUSTER_CA, min_length=1)
    namespace: Name = "default"


class AzureDebugConfig(_Config):
    """Azure Blob storage of the storage account ``account``, signed with its account key (read
    from ``key_file``, base64 as the portal shows it, when a session starts: a rotated key
    applies to the next one). ``blob_endpoint``: where the account's blob service is served
    instead of ``https://<account>.blob.core.windows.net`` (a private endpoint; Azurite's
    path-style ``http://127.0.0.1:10000/<account>``)."""

    account: Annotated[str, StringConstraints(pattern=_ACCOUNT, strict=True)]
    key_file: str = Field(min_length=1)
    blob_endpoint: str | None = None

    @property
    def endpoint(self) -> BlobEndpoint:
        if self.blob_endpoint is None:
            return BlobEndpoint.public(self.account)
        return BlobEndpoint.parse(self.blob_endpoint, "azure.blob_endpoint")

    def key(self) -> bytes:
        return read_account_key(Path(self.key_file), "azure.key_file")


class DebugConfig(_Config):
    """``<state-dir>/debug.json``."""

    aws: AwsDebugConfig | None = None
    http: HttpDebugConfig | None = None
    gcp: GcpDebugConfig | None = None
    kubernetes: KubernetesDebugConfig | None = None
    azure: AzureDebugConfig | None = None

    @property
    def offer(self) -> DebugOffer:
        return DebugOffer(
            aws=AwsOffer(region=self.aws.region, services=tuple(self.aws.allowed_services))
            if self.aws
            else None,
            http=HttpOffer(allow=tuple(self.http.allow)) if self.http else None,
            gcp=GcpOffer(project=self.gcp.project, apis=tuple(self.gcp.allowed_apis))
            if self.gcp
            else None,
            kubernetes=KubernetesOffer(namespace=self.kubernetes.namespace)
            if self.kubernetes
            else None,
            azure=AzureOffer(account=self.azure.account) if self.azure else None,
        )


def config_path(state_root: Path) -> Path:
    return state_root / CONFIG_FILE


def load_config(path: Path) -> DebugConfig:
    """Read and check the debug configuration; ``ValidationError`` naming the bad field."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValidationError(f"{path} does not exist", field="debug") from None
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{path} is not readable JSON: {exc}", field="debug") from None
    config = _parse(path, data)
    if config.http is not None:
        HostAllowlist(config.http.allow)  # refuse a bad pattern now, not at the first request
    if config.aws is not None:
        aws_policy(config.aws)
    if config.gcp is not None:
        _check_gcp(config.gcp)
    if config.kubernetes is not None:
        kubernetes_server(config.kubernetes)
        if config.kubernetes.ca_file is not None:
            _check_ca_file(config.kubernetes.ca_file)
    if config.azure is not None:
        config.azure.endpoint  # noqa: B018  # refuses a bad URL now, not at the first call
        config.azure.key()
    return config


# What the lists hold, for messages in the file's terms: (the kind, one of them).
_LISTS = {
    "allowed_services": ("AWS service names", "AWS service (like s3)"),
    "allowed_apis": ("API names", "API (like pubsub)"),
    "allow": ("host[:port] patterns", "host[:port] pattern (like api.example.com)"),
}
_PATTERNS = {
    _NAME: "lowercase letters, digits and '-' (at most 63)",
    _PROJECT: "a project id (lowercase letters, digits, '.', ':' and '-')",
    _ACCOUNT: "3 to 24 lowercase letters and digits",
}
_PARTS: dict[str, type[BaseModel]] = {
    "aws": AwsDebugConfig,
    "http": HttpDebugConfig,
    "gcp": GcpDebugConfig,
    "kubernetes": KubernetesDebugConfig,
    "azure": AzureDebugConfig,
}


def _parse(path: Path, data: Any) -> DebugConfig:
    """``data`` as a :class:`DebugConfig`, or a ``ValidationError`` in the terms of the file
    the customer wrote (its keys, what they must hold), not pydantic's (``a valid tuple``,
    ``instance of DebugConfig``): the admin reading it fixes a JSON file, not a model."""
    try:
        return DebugConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        loc = tuple(first["loc"])
        field = ".".join(str(part) for part in loc) or "debug"
        if not loc:
            raise ValidationError(f"{path} must hold a JSON object", field=field) from None
        raise ValidationError(f"{path}: {_problem(loc, first)}", field=field) from None


def _key(loc: tuple[Any, ...]) -> str:
    """``gcp.allowed_apis[0]``; a dict key's problem is ``a key of gcp.endpoints`` (the key
    itself is not echoed, as no input is in these messages)."""
    if loc and loc[-1] == "[key]":
        return f"a key of {_key(loc[:-2])}"
    return "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" if i else str(part)
        for i, part in enumerate(loc)
    )


def _problem(loc: tuple[Any, ...], error: Any) -> str:
    key, kind, ctx = _key(loc), error["type"], error.get("ctx") or {}
    named = next((part for part in reversed(loc) if isinstance(part, str)), "")
    plural, one = _LISTS.get(named, ("values", "value"))
    if kind in ("model_type", "dict_type"):
        return f"{key} must be a JSON object"
    if kind in ("tuple_type", "list_type"):
        return f"{key} must be a list of {plural}"
    if kind == "too_short":
        return f"{key} must list at least one {one}"
    if kind == "string_too_short":
        return f"{key} must not be empty"
    if kind == "string_type":
        return f"{key} must be a string"
    if kind == "string_pattern_mismatch":
        return f"{key} must be {_PATTERNS.get(ctx.get('pattern'), 'valid')}"
    if kind == "literal_error":
        return f"{key} must be {ctx.get('expected')}"
    if kind == "missing":
        return f"{key} is required"
    if kind == "extra_forbidden":
        model = _PARTS.get(loc[0]) if len(loc) == 2 else DebugConfig if len(loc) == 1 else None
        known = f": it knows {', '.join(model.model_fields)}" if model else ""
        return f"{key} is not a key {CONFIG_FILE} knows{known}"
    return f"{key}: {error['msg']}"


def _check_ca_file(ca_file: str) -> None:
    if not Path(ca_file).is_file():
        raise ValidationError(
            f"{ca_file} does not exist (null trusts the system's CAs)", field="kubernetes.ca_file"
        )
    try:
        ssl.create_default_context(cafile=ca_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ValidationError(
            f"{ca_file} holds no usable CA certificate: {exc}", field="kubernetes.ca_file"
        ) from None


def kubernetes_server(kubernetes: KubernetesDebugConfig) -> str:
    server = kubernetes.server or in_cluster_server()
    if server is None:
        raise ValidationError(
            "not in a cluster (no KUBERNETES_SERVICE_HOST): name the API server",
            field="kubernetes.server",
        )
    return endpoint_base(server, "kubernetes.server")


def _check_gcp(gcp: GcpDebugConfig) -> None:
    if (gcp.credentials == "token_file") != (gcp.token_file is not None):
        raise ValidationError(
            "token_file is needed with credentials 'token_file', and only then",
            field="gcp.token_file",
        )
    for api, url in gcp.endpoints.items():
        if api not in gcp.allowed_apis:
            raise ValidationError(
                f"an endpoint for {api!r}, which allowed_apis does not list", field=f"gcp.{api}"
            )
        endpoint_base(url, f"gcp.endpoints.{api}")


def aws_policy(aws: AwsDebugConfig) -> AwsEndpointPolicy:
    return AwsEndpointPolicy.create(aws.region, aws.allowed_services, aws.endpoint_url)


def reach(state_root: Path) -> dict[str, Any]:
    """What a debug session may reach through the agent of ``state_root``, for the customer's
    admin to check before any session (``alien-deploy debug``): the checked configuration with
    the Kubernetes server resolved. Paths and names only: the file holds no secret, and an AWS
    external id is shown as set or not. ``ValidationError`` naming the field if it is wrong.

    Without a debug.json, debugging is off — if an agent was onboarded here. A directory that
    holds neither (a mistyped ``--state-dir``, one never used) is refused as ``alien-deploy
    status`` refuses it: "off" would claim something of an agent that is elsewhere. A debug.json
    written before ``alien-deploy up`` is still checked."""
    path = config_path(state_root)
    if not path.exists():
        state = StateDir(state_root)
        if not state.onboarded:
            state.load()  # raises the NotFound of a state dir with no onboarded deployment
        return {"config": str(path), "enabled": False}
    config = load_config(path)
    parts = config.model_dump(mode="json", exclude_none=True)
    if config.aws is not None:
        parts["aws"]["external_id"] = config.aws.external_id is not None
    if config.kubernetes is not None:
        parts["kubernetes"]["server"] = kubernetes_server(config.kubernetes)
    return {"config": str(path), "enabled": True, **parts}
