"""The agent's Azure Blob storage upstream: a call named as
``https://<account>.blob.core.windows.net/…`` goes to that account's blob endpoint, signed with
the account's key (Shared Key), if it is the account the customer configured.

The CLI sends each call of the debugged ``az storage`` in absolute form to the account's public
blob host (see :mod:`alien.debug.azure_endpoint`, which checked the call's signature with the
session's dummy key and removed it). Here the customer's configuration decides where it goes —
the public endpoint, or another one (a private endpoint; Azurite, path-style, under
``/<account>``) — and the agent signs it with the real key, over exactly the path and query that
go on the wire, if it is dated within Azure's 15 minutes (a signature of the agent's is good for
no longer than the call). The key never leaves the agent. Refused before any connection:

* a call carrying a credential of the caller's (a shared access signature in the query): a
  session acts with the deployment's identity only;
* a standing way in that would outlive the session: anonymous public access
  (``x-ms-blob-public-access`` on a container's creation or ACL) and a write of the blob
  service's properties (a static website serving ``$web`` to anyone, CORS rules);
* towards a path-style endpoint, a path with a dot segment however encoded: the prefix is the
  account's, and a server resolving ``%2e%2e`` would be sent a signed call outside it.

Shared Key reaches the blob data plane of one account and nothing else; it mints no credential
(user delegation keys need Entra ID, account keys are managed through Azure Resource Manager,
which this channel does not reach). What the data plane itself does for longer than a session —
stored access policies, legal holds, immutability policies, customer-provided encryption keys —
is data, as a deleted blob is, and is the deployment identity's to allow or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import httpx

from alien.errors import Forbidden, PlatformError, ValidationError
from alien.platforms.azure.shared_key import check_date, parse_key, sign
from alien.platforms.bearer_tokens import caller_credential_refused, query_names
from alien.platforms.path_readings import sent_target
from alien.protocol.debug_offer import azure_blob_account_of
from alien.protocol.http_exchange import Body, RequestHead, UpstreamResponse
from alien.tunnel.forward import ForwardingUpstream, absolute_url, destination, endpoint_url

_REPLACED = frozenset({"authorization", "host"})
_SAS_PARAMETERS = frozenset({"sig"})
"""A shared access signature's signature parameter: its presence makes a call a SAS call."""
_PUBLIC_ACCESS_HEADER = "x-ms-blob-public-access"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_OPERATION_PARAMETERS = ("restype", "comp")
_AUDITED_PATH = 120
"""Characters of a path the audit keeps (an operation record is 200): the query naming the
operation must survive a blob name of up to 1,024."""


@dataclass(frozen=True)
class BlobEndpoint:
    """Where an account's blob service is served: ``base`` (``scheme://host[:port]``) and the
    path ``prefix`` before container names (``""``, or ``/<account>`` for Azurite's path-style
    URLs)."""

    base: str
    prefix: str

    @classmethod
    def parse(cls, url: str, field: str) -> BlobEndpoint:
        parsed = endpoint_url(url, field, path=True)
        prefix = parsed.raw_path.decode("ascii").rstrip("/")
        return cls(f"{parsed.scheme}://{parsed.netloc.decode()}", prefix)

    @classmethod
    def public(cls, account: str) -> BlobEndpoint:
        return cls(f"https://{account}.blob.core.windows.net", "")


def azure_blob_account(target: str) -> str | None:
    """The storage account an absolute-form request target calls (``acme``), or ``None``."""
    found = destination(target)
    return None if found is None else azure_blob_account_of(*found)


def _operation(target: str) -> dict[str, str]:
    """The query parameters naming a call's operation (``restype``, ``comp``), names read in any
    case as Shared Key reads them."""
    url = absolute_url(target)
    named = {name.lower(): value for name, value in url.params.multi_items()}
    return {name: named[name].lower() for name in _OPERATION_PARAMETERS if name in named}


def blob_operation(head: RequestHead) -> str:
    """What a blob call does, for the audit: method, path (its first 120 characters), and the
    query parameters that name the operation (``PUT /c/b?comp=block``), never the others (they
    may carry data: metadata, ids, a continuation marker); ``(copy from a URL)`` when the
    service fetches the content from elsewhere."""
    url = absolute_url(head.target)
    path = url.raw_path.decode("ascii").partition("?")[0]
    if len(path) > _AUDITED_PATH:
        path = path[:_AUDITED_PATH] + "…"
    query = "&".join(f"{name}={value}" for name, value in _operation(head.target).items())
    copied = " (copy from a URL)" if head.get("x-ms-copy-source") is not None else ""
    return f"{head.method} {path}" + (f"?{query}" if query else "") + copied


def _standing_access(head: RequestHead) -> str | None:
    """What in ``head`` would open a way in that outlives the session, or ``None``."""
    if head.get(_PUBLIC_ACCESS_HEADER) is not None:
        return f"anonymous public access ({_PUBLIC_ACCESS_HEADER})"
    if head.method not in _READS and _operation(head.target) == {
        "restype": "service",
        "comp": "properties",
    }:
        return "a write of the blob service's properties (static website, CORS)"
    return None


def _has_dot_segment(path: str) -> bool:
    """``path`` has a ``.`` or ``..`` segment under some reading (percent-decoded until nothing
    changes, a backslash read as ``/``)."""
    while (decoded := unquote(path)) != path:
        path = decoded
    return any(segment in (".", "..") for segment in path.replace("\\", "/").split("/"))


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
        if standing := _standing_access(head):
            raise Forbidden(
                f"{standing} would outlive the debug session",
                field="operation",
                code="CREDENTIAL_MINTING_REFUSED",
            )
        check_date(head, datetime.now(UTC))
        endpoint = self._endpoint
        path = sent_target(head.target)
        if endpoint.prefix and _has_dot_segment(path.partition("?")[0]):
            raise ValidationError(
                "a path with a dot segment cannot go to a path-style blob endpoint", field="target"
            )
        target = absolute_url(endpoint.base + endpoint.prefix + path)
        on_wire = target.raw_path.decode("ascii")  # what the forwarder sends, byte for byte
        headers = tuple((k, v) for k, v in head.headers if k not in _REPLACED)
        signed = sign(RequestHead(head.method, on_wire, headers), self._account, self._key)
        return await self._forward.send(RequestHead(head.method, str(target), signed.headers), body)

    async def aclose(self) -> None:
        await self._forward.aclose()
