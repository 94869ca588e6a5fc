"""What a deployment's agent offers a pull-model debug session, read and written by the stdlib.

The CLI asks for the offer on the set-up's critical path (``alien debug`` cannot give its command
an environment before it knows which channels exist), and building the pydantic wire models of
:mod:`alien.protocol.agent_channel` cost that path more than the agent's whole round trip (about
a fifth of a second on a 2-core machine, see ``bench/debug_tunnel.py``). So this one message is
frozen dataclasses checked field by field, with the same limits a wire model would apply: the
object's keys are exactly the known ones (a typo from a peer is an error, not dropped data),
region and service names are lower-case DNS-like labels, storage account names Azure's 3-24
lower-case letters and digits, host patterns are 1-260 characters.
Failures raise :class:`alien.errors.ValidationError` naming the field.

The exchange: a tunnel stream whose meta ``kind`` is :data:`DEBUG_INFO_KIND`, answered with the
offer as JSON (at most :data:`MAX_OFFER_BYTES`), then END.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from alien.errors import ValidationError

DEBUG_INFO_KIND = "debug_info"
"""The ``kind`` of a tunnel stream asking the agent what it offers."""
MAX_OFFER_BYTES = 64 * 1024
MAX_HOST_PATTERN = 260
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_PROJECT = re.compile(r"[a-z0-9][a-z0-9.:-]{0,99}")
GOOGLE_APIS_DOMAIN = ".googleapis.com"
AZURE_BLOB_DOMAIN = ".blob.core.windows.net"
_AZURE_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
KUBERNETES_API_HOST = "kubernetes.default.svc"
"""How the CLI names the agent's cluster API to the agent (its in-cluster DNS name): an
absolute-form request to ``https://kubernetes.default.svc/…``."""


def google_api_of(scheme: str, host: str, port: int | None) -> str | None:
    """``pubsub`` for ``https://pubsub.googleapis.com`` (default port); ``None`` for any other
    destination. How the CLI names a Google API call to the agent: an absolute-form request."""
    if scheme != "https" or port not in (None, 443) or not host.endswith(GOOGLE_APIS_DOMAIN):
        return None
    api = host[: -len(GOOGLE_APIS_DOMAIN)]
    return api if _NAME.fullmatch(api) else None


def azure_blob_account_of(scheme: str, host: str, port: int | None) -> str | None:
    """``acme`` for ``https://acme.blob.core.windows.net`` (default port); ``None`` for any
    other destination. How the CLI names an Azure Blob storage call to the agent: an
    absolute-form request to the account's public blob host, wherever the agent sends it."""
    if scheme != "https" or port not in (None, 443) or not host.endswith(AZURE_BLOB_DOMAIN):
        return None
    account = host[: -len(AZURE_BLOB_DOMAIN)]
    return account if _AZURE_ACCOUNT.fullmatch(account) else None


@dataclass(frozen=True)
class AwsOffer:
    """AWS re-signed with the agent's own identity: the region and services it allows."""

    region: str
    services: tuple[str, ...]


@dataclass(frozen=True)
class HttpOffer:
    """HTTP egress (forward proxy and CONNECT) to the destinations on ``allow``."""

    allow: tuple[str, ...]


@dataclass(frozen=True)
class GcpOffer:
    """Google Cloud APIs called with the agent's own credentials: the project and the APIs
    (``pubsub``, ``storage``, …: the first label of ``<api>.googleapis.com``) it allows."""

    project: str
    apis: tuple[str, ...]


@dataclass(frozen=True)
class KubernetesOffer:
    """The Kubernetes API of the agent's cluster, called with the agent's service account; the
    namespace ``kubectl`` starts in."""

    namespace: str


@dataclass(frozen=True)
class AzureOffer:
    """Azure Blob storage of one storage account, signed with its account key by the agent."""

    account: str


@dataclass(frozen=True)
class DebugOffer:
    """Each channel the agent offers (the customer's choice, in its debug configuration), or
    ``None`` when that channel is not offered."""

    aws: AwsOffer | None = None
    http: HttpOffer | None = None
    gcp: GcpOffer | None = None
    kubernetes: KubernetesOffer | None = None
    azure: AzureOffer | None = None

    @property
    def empty(self) -> bool:
        parts = (self.aws, self.http, self.gcp, self.kubernetes, self.azure)
        return all(part is None for part in parts)

    def __post_init__(self) -> None:
        if self.aws is not None:
            _name(self.aws.region, "aws.region")
            for i, service in enumerate(self.aws.services):
                _name(service, f"aws.services.{i}")
        if self.gcp is not None:
            if _PROJECT.fullmatch(self.gcp.project) is None:
                raise ValidationError(
                    "expected a project id (lower-case letters, digits, '-', '.', ':')",
                    field="gcp.project",
                )
            for i, api in enumerate(self.gcp.apis):
                _name(api, f"gcp.apis.{i}")
        if self.kubernetes is not None:
            _name(self.kubernetes.namespace, "kubernetes.namespace")
        if self.azure is not None:
            azure_account(self.azure.account, "azure.account")
        if self.http is not None:
            for i, host in enumerate(self.http.allow):
                _host_pattern(host, f"http.allow.{i}")

    def to_json(self) -> bytes:
        """Channels not offered are left out, not ``null``: a CLI older than a channel refuses
        a key it does not know, so an agent names a new channel only where it offers it."""
        parts = {name: part for name, part in asdict(self).items() if part is not None}
        return json.dumps(parts, separators=(",", ":")).encode()


def parse_offer(data: bytes) -> DebugOffer:
    """The offer in ``data`` (untrusted: from the agent, through the manager)."""
    if len(data) > MAX_OFFER_BYTES:
        raise ValidationError(f"the offer is over {MAX_OFFER_BYTES} bytes", field="offer")
    try:
        document = json.loads(data)
    except ValueError:
        raise ValidationError("the offer is not JSON", field="offer") from None
    fields = _object(document, "offer", {"aws", "http", "gcp", "kubernetes", "azure"})
    return DebugOffer(
        aws=_optional(fields.get("aws"), "aws", _aws),
        http=_optional(fields.get("http"), "http", _http),
        gcp=_optional(fields.get("gcp"), "gcp", _gcp),
        kubernetes=_optional(fields.get("kubernetes"), "kubernetes", _kubernetes),
        azure=_optional(fields.get("azure"), "azure", _azure),
    )


def _azure(value: Any) -> AzureOffer:
    fields = _object(value, "azure", {"account"}, required=True)
    return AzureOffer(account=_string(fields["account"], "azure.account"))


def _kubernetes(value: Any) -> KubernetesOffer:
    fields = _object(value, "kubernetes", {"namespace"}, required=True)
    return KubernetesOffer(namespace=_string(fields["namespace"], "kubernetes.namespace"))


def _gcp(value: Any) -> GcpOffer:
    fields = _object(value, "gcp", {"project", "apis"}, required=True)
    return GcpOffer(
        project=_string(fields["project"], "gcp.project"),
        apis=_strings(fields["apis"], "gcp.apis"),
    )


def _aws(value: Any) -> AwsOffer:
    fields = _object(value, "aws", {"region", "services"}, required=True)
    return AwsOffer(
        region=_string(fields["region"], "aws.region"),
        services=_strings(fields["services"], "aws.services"),
    )


def _http(value: Any) -> HttpOffer:
    fields = _object(value, "http", {"allow"}, required=True)
    return HttpOffer(allow=_strings(fields["allow"], "http.allow"))


def _optional(value: Any, field: str, build: Callable[[Any], Any]) -> Any:
    return None if value is None else build(value)


def _object(value: Any, field: str, keys: set[str], *, required: bool = False) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError("expected an object", field=field)
    unknown = sorted(set(value) - keys)
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=f"{field}.{unknown[0]}")
    missing = sorted(keys - set(value)) if required else []
    if missing:
        raise ValidationError("this field is required", field=f"{field}.{missing[0]}")
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError("expected a string", field=field)
    return value


def _strings(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValidationError("expected a list", field=field)
    return tuple(_string(item, f"{field}.{i}") for i, item in enumerate(value))


def _name(value: str, field: str) -> None:
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise ValidationError(
            "expected a lower-case name (letters, digits, '-'; at most 63)", field=field
        )


def azure_account(value: str, field: str) -> None:
    """A storage account name: 3-24 lower-case letters and digits (Azure's own rule)."""
    if not isinstance(value, str) or _AZURE_ACCOUNT.fullmatch(value) is None:
        raise ValidationError(
            "expected a storage account name (3 to 24 lower-case letters and digits)", field=field
        )


def _host_pattern(value: str, field: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_HOST_PATTERN:
        raise ValidationError(f"expected 1 to {MAX_HOST_PATTERN} characters", field=field)
