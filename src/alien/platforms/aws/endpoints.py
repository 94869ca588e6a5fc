"""Which AWS endpoint a debug request may reach: the allowlist.

The re-signing side must never be an open relay. A request names its service and region only
through the credential scope it was signed with (the loopback proxy is the caller's endpoint, so its
host says nothing); from that and the deployment's configuration we either produce the one upstream
URL and signing region, or refuse with a reason a person can act on. Nothing the caller sends can
choose the upstream host.

Hostnames and the signing region of global services (IAM, Route 53, CloudFront, Organizations: all
signed for us-east-1) come from botocore's endpoint data rather than a hand-kept table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any
from urllib.parse import urlsplit

from botocore.loaders import create_loader
from botocore.regions import EndpointResolver

from alien.errors import Forbidden, ValidationError

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
GLOBAL_ENDPOINT_NAME = "aws-global"


@dataclass(frozen=True)
class EndpointInfo:
    """Where a service lives for a region, and which region its signatures use."""

    hostname: str
    signing_region: str
    is_global: bool


Resolver = Callable[[str, str], EndpointInfo]


@dataclass(frozen=True)
class AwsEndpointPolicy:
    """A deployment's debugging reach on AWS.

    ``allowed_services`` are SigV4 signing names (``s3``, ``sts``, ``dynamodb``...).
    ``endpoint_override`` replaces every AWS hostname (an emulator such as the moto server, or a
    VPC endpoint); when it is set, requests still go only to allowed services and regions.
    """

    region: str
    allowed_services: frozenset[str]
    endpoint_override: str | None = None
    service_overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.region):
            raise ValidationError(f"invalid AWS region {self.region!r}", field="region")
        bad = sorted(s for s in self.allowed_services if not _NAME_RE.fullmatch(s))
        if bad:
            raise ValidationError(f"invalid AWS service names {bad}", field="allowed_services")
        overrides = [self.endpoint_override, *self.service_overrides.values()]
        for url in (u for u in overrides if u is not None):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
                raise ValidationError(
                    f"endpoint override {url!r} must be an http(s) URL without a query",
                    field="endpoint_override",
                )

    @classmethod
    def create(
        cls,
        region: str,
        allowed_services: Iterable[str],
        endpoint_override: str | None = None,
        service_overrides: Mapping[str, str] | None = None,
    ) -> AwsEndpointPolicy:
        return cls(
            region=region,
            allowed_services=frozenset(allowed_services),
            endpoint_override=endpoint_override,
            service_overrides=dict(service_overrides or {}),
        )


@dataclass(frozen=True)
class AwsRoute:
    """The decision for one request: forward to ``base_url`` + the raw target, signed for
    ``signing_region``/``service``."""

    base_url: str
    service: str
    signing_region: str


@cache
def _botocore_resolver() -> EndpointResolver:
    return EndpointResolver(create_loader().load_data("endpoints"))


def load_endpoint_data() -> None:
    """Load botocore's endpoint data now (about 0.4 s of JSON parsing, once per process), so
    the first request routed through :func:`botocore_endpoint` does not wait for it."""
    _botocore_resolver()


@lru_cache(maxsize=1024)
def botocore_endpoint(service: str, region: str) -> EndpointInfo:
    """Resolve a signing name and region through botocore's bundled endpoint data (remembered:
    the data is fixed for the process, and resolving cost ~60 µs on every proxied request)."""
    found: dict[str, Any] | None = _botocore_resolver().construct_endpoint(service, region)
    if not found or "hostname" not in found:
        hostname = f"{service}.{region}.amazonaws.com"
        return EndpointInfo(hostname=hostname, signing_region=region, is_global=False)
    scope_region = found.get("credentialScope", {}).get("region", region)
    return EndpointInfo(
        hostname=found["hostname"],
        signing_region=scope_region,
        is_global=found.get("endpointName") == GLOBAL_ENDPOINT_NAME,
    )


def route_request(
    policy: AwsEndpointPolicy,
    service: str,
    region: str,
    *,
    resolve: Resolver = botocore_endpoint,
) -> AwsRoute:
    """Decide the upstream for a request signed for ``service`` in ``region``.

    Raises ``Forbidden`` (with ``details["aws_code"] == "AccessDenied"``) when the service is not
    allowed or a regional service is asked for outside the deployment's region. A global service
    is reachable whatever region the caller signed for, and is re-signed for its own region.
    """
    if service not in policy.allowed_services:
        allowed = ", ".join(sorted(policy.allowed_services)) or "none"
        raise Forbidden(
            f"service {service!r} is not allowed in this debug session (allowed: {allowed})",
            field="service",
            details={"aws_code": "AccessDenied"},
        )
    endpoint = resolve(service, policy.region)
    if not endpoint.is_global and region != policy.region:
        raise Forbidden(
            f"region {region!r} is outside this deployment (its region is {policy.region!r})",
            field="region",
            details={"aws_code": "AccessDenied"},
        )
    override = policy.service_overrides.get(service, policy.endpoint_override)
    base_url = override.rstrip("/") if override else f"https://{endpoint.hostname}"
    return AwsRoute(base_url=base_url, service=service, signing_region=endpoint.signing_region)
