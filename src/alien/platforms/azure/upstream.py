"""The agent's Azure Blob storage upstream: a call named as
``https://<account>.blob.core.windows.net/…`` goes to that account's blob endpoint, signed with
the account's key (Shared Key), if it is the account the customer configured.

The CLI sends each call of the debugged ``az storage`` in absolute form to the account's public
blob host (see :mod:`alien.debug.azure_endpoint`, which checked the call's signature with the
session's dummy key and removed it). Here the customer's configuration decides where it goes —
the public endpoint, or another one (a private endpoint; Azurite, path-style, under
``/<account>``) — and the agent signs it with the real key, over exactly the path and query that
go on the wire. The key never leaves the agent. A call carrying a credential of the caller's
(a shared access signature in the query) is refused: a session acts with the deployment's
identity only. Shared Key reaches the blob data plane of one account and nothing else; it cannot
mint a credential that would outlive the session (user delegation keys need Entra ID, account
keys are managed through Azure Resource Manager, which this channel does not reach).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from alien.errors import Forbidden, PlatformError, ValidationError
from alien.platforms.azure.shared_key import parse_key, sign
from alien.platforms.bearer_tokens import caller_credential_refused, query_names
from alien.platforms.path_readings import sent_target
from alien.protocol.debug_offer import azure_blob_account_of
from alien.protocol.http_exchange import Body, RequestHead, UpstreamResponse
from alien.tunnel.forward import ForwardingUpstream, absolute_url

_REPLACED = frozenset({"authorization", "host"})
_SAS_PARAMETERS = frozenset({"sig"})
"""A shared access signature's signature parameter: its presence makes a call a SAS call."""


@dataclass(frozen=True)
class BlobEndpoint:
    """Where an account's blob service is served: ``base`` (``scheme://host[:port]``) and the
    path ``prefix`` before container names (``""``, or ``/<account>`` for Azurite's path-style
    URLs)."""

    base: str
    prefix: str

    @classmethod
    def parse(cls, url: str, field: str) -> BlobEndpoint:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise ValidationError(f"{url!r} is not a URL", field=field) from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValidationError("expected an http(s) URL", field=field)
        if parsed.userinfo or parsed.query or parsed.fragment:
            raise ValidationError("expected scheme://host[:port][/path] only", field=field)
        prefix = parsed.raw_path.decode("ascii").rstrip("/")
        return cls(f"{parsed.scheme}://{parsed.netloc.decode()}", prefix)

    @classmethod
    def public(cls, account: str) -> BlobEndpoint:
        return cls(f"https://{account}.blob.core.windows.net", "")


def azure_blob_account(target: str) -> str | None:
    """The storage account an absolute-form request target calls (``acme``), or ``None``."""
    try:
        url = absolute_url(target)
    except ValidationError:
        return None
    return azure_blob_account_of(url.scheme, url.host, url.port)


def blob_operation(method: str, target: str) -> str:
    """What a blob call does, for the audit: method, path, and the query parameters that name
    the operation (``restype``, ``comp``: ``PUT /c/b?comp=block``), never the others (they
    may carry data: metadata, ids, a continuation marker)."""
    url = absolute_url(target)
    naming = [
        (name, value) for name, value in url.params.multi_items() if name in ("restype", "comp")
    ]
    query = "&".join(f"{name}={value}" for name, value in naming)
    path = url.raw_path.decode("ascii").partition("?")[0]
    return f"{method} {path}" + (f"?{query}" if query else "")


def read_account_key(path: Path, field: str) -> bytes:
    """The account key in the file ``path`` (base64, as the Azure portal shows it)."""
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise PlatformError(
            f"the account key file {path} cannot be read: {exc.strerror or type(exc).__name__}",
            field=field,
            code="KEY_UNAVAILABLE",
        ) from None
    return parse_key(value, field)


class AzureBlobUpstream:
    """One storage account's blob service, signed with its key."""

    def __init__(self, account: str, key: bytes, endpoint: BlobEndpoint) -> None:
        self._account = account
        self._key = key
        self._endpoint = endpoint
        netloc = httpx.URL(endpoint.base).netloc.decode()
        self._forward = ForwardingUpstream([netloc], resolve=None)  # the customer's endpoint

    def __repr__(self) -> str:  # never the key
        return f"AzureBlobUpstream(account={self._account!r}, endpoint={self._endpoint.base!r})"

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        account = azure_blob_account(head.target)
        if account is None:
            raise ValidationError("not an Azure Blob storage call", field="target")
        if account != self._account:
            raise Forbidden(
                f"the storage account {account!r} is not the one this deployment's debug "
                "configuration offers (set by the customer in the agent's debug.json)",
                field="account",
                code="ACCOUNT_NOT_ALLOWED",
            )
        if found := [f"query parameter {n}" for n in _SAS_PARAMETERS & query_names(head.target)]:
            raise caller_credential_refused(found)
        endpoint = self._endpoint
        target = absolute_url(endpoint.base + endpoint.prefix + sent_target(head.target))
        on_wire = target.raw_path.decode("ascii")  # what the forwarder sends, byte for byte
        headers = tuple((k, v) for k, v in head.headers if k not in _REPLACED)
        signed = sign(RequestHead(head.method, on_wire, headers), self._account, self._key)
        return await self._forward.send(RequestHead(head.method, str(target), signed.headers), body)

    async def aclose(self) -> None:
        await self._forward.aclose()
