"""Google API calls a debug session may not make: those minting a credential, or granting a
standing way in, that would outlive the session (within what the agent's identity may do).
Refused before any connection, Google-shaped: 403 ``PERMISSION_DENIED``,
``CREDENTIAL_MINTING_REFUSED``.

* Whole APIs (:data:`REFUSED_APIS`): ``iamcredentials`` (access and ID tokens, signed blobs and
  JWTs as a service account), ``sts`` (token exchange), ``oauth2`` (the token endpoint). An API
  is the one the request names (``https://<api>.googleapis.com``, the allowlist's key) and, when
  the customer points it at another ``<api>.googleapis.com`` or a Private Service Connect
  ``<api>-<endpoint>.p.googleapis.com``, that one too: the request really goes there.
* Calls, on any API (:data:`REFUSED_CALLS`, matched on the path, so an API reached under another
  name or endpoint is covered too): signing as a service account (IAM's ``:signBlob``,
  ``:signJwt``, …), ``setIamPolicy`` in all its spellings (``…:setIamPolicy``, Compute's
  ``…/setIamPolicy``, Cloud Storage's ``PUT …/b/<bucket>/iam`` and any write to a ``/iam``
  under a bucket: an object's, a managed folder's), service account keys (create, ``:upload``,
  ``:enable``) and re-enabling or undeleting a service account (its keys work again), Cloud
  Storage HMAC keys (create, update: re-activating one), API keys, OS Login SSH keys, custom
  roles, workload and workforce identity pools and their providers, OAuth clients and their
  secrets, and the token endpoints (``/v1/token``, ``/oauth2/v4/token`` on
  ``www.googleapis.com``, …).

A path is judged under every reading a server could make of it
(:mod:`alien.platforms.path_readings`, and each with its segments' ``;params`` dropped); a
method as sent and as any ``X-HTTP-Method-Override`` names it (Google APIs honour that header).
A path with a segment starting ``$rpc`` (an RPC method named over HTTP, not a REST path) is
refused. A batch request (``/batch/…``, as gcloud sends Compute and Cloud Storage calls) is read
whole (at most :data:`MAX_BATCH_BODY`) and every request line in it judged the same way; an
encoded batch (``Content-Encoding``, a part's ``Content-Transfer-Encoding`` other than 7bit,
8bit or binary), one nesting a batch, and a part whose target names a host (``//host/…``) are
refused, and so is a part carrying a credential of its own (:mod:`.caller_credentials`: Google
runs it with that one), with ``CALLER_CREDENTIAL_REFUSED``.

Not refused — the deployment identity's roles must not allow them, as for AWS: grants carried in
a resource's own data (Cloud Storage ACLs and ``predefinedAcl``, BigQuery dataset access lists
and SQL ``GRANT``), database credentials (Cloud SQL users and client certificates), SSH keys in
Compute metadata, and workloads that run as a service account (a VM, a function) — what those do
after the session is that identity's to bound. ``accounts.google.com`` is not a Google API host,
so the channel cannot reach it; through HTTP egress it gets no credential of the agent's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from alien.platforms.bearer_tokens import caller_credential_refused
from alien.platforms.credential_screen import minting_refused, minting_uncertain, read_whole
from alien.platforms.gcp.caller_credentials import (
    CALLER_CREDENTIAL_HEADERS,
    header_name,
    in_headers,
    in_query,
)
from alien.platforms.path_readings import Reading, path_readings, sent_target
from alien.protocol.debug_offer import GOOGLE_APIS_DOMAIN, google_api_of
from alien.protocol.http_exchange import Body, RequestHead, iterate_once

MAX_BATCH_BODY = 4 * 1024 * 1024
"""Largest batch body read to judge its parts (gcloud's run to some hundred small calls)."""
METHOD_OVERRIDE = "x-http-method-override"
WRITES = frozenset({"POST", "PUT", "PATCH"})

REFUSED_APIS = {
    "iamcredentials": "the IAM Service Account Credentials API mints tokens and signatures",
    "sts": "the Security Token Service exchanges tokens for new ones",
    "oauth2": "Google's OAuth 2.0 token endpoint mints tokens",
}


@dataclass(frozen=True)
class RefusedCall:
    """Calls refused on any API: ``methods`` (``None``: any) to a path matching ``path`` (a
    regular expression searched in a path reading joined as ``/a/b:verb``, lower case)."""

    methods: frozenset[str] | None
    path: re.Pattern[str]
    what: str


def _refused(methods: Iterable[str] | None, path: str, what: str) -> RefusedCall:
    return RefusedCall(None if methods is None else frozenset(methods), re.compile(path), what)


REFUSED_CALLS = (
    _refused(
        None,
        r":(generateaccesstoken|generateidtoken|generateidentitybindingaccesstoken"
        r"|signblob|signjwt)$",
        "signing as a service account mints a token, a JWT or a signature",
    ),
    _refused(None, r"[:/]setiampolicy$", "setting an IAM policy grants access, a standing way in"),
    _refused(
        WRITES,
        r"/b/.+/iam$",  # a bucket's, an object's, a managed folder's (nested ones: a%2Fb)
        "setting a Cloud Storage IAM policy grants access, a standing way in",
    ),
    _refused(
        {"POST"},
        r"/serviceaccounts/.+/keys(:upload)?$",
        "creating or uploading a service account key mints a credential",
    ),
    _refused(
        {"POST"},
        r"/serviceaccounts/.+/keys/[^/]+:enable$",
        "re-enabling a service account key restores a credential",
    ),
    _refused(
        {"POST"},
        r"/serviceaccounts/.+:(enable|undelete)$",
        "re-enabling or undeleting a service account restores its keys, credentials",
    ),
    _refused(
        {"POST"},
        r"/projects/[^/]+/hmackeys$",
        "creating a Cloud Storage HMAC key mints a credential",
    ),
    _refused(
        {"PUT", "PATCH"},
        r"/projects/[^/]+/hmackeys/[^/]+$",
        "re-activating a Cloud Storage HMAC key restores a credential",
    ),
    _refused(
        WRITES,
        r"^/v2/projects/[^/]+/locations/[^/]+/keys(/[^/]+)?$",
        "creating or changing an API key mints a credential",
    ),
    _refused(None, r":importsshpublickey$", "an OS Login SSH key is a standing way into VMs"),
    _refused(
        WRITES,
        r"/users/[^/]+/sshpublickeys(/[^/]+)?$",
        "an OS Login SSH key is a standing way into VMs",
    ),
    _refused(
        WRITES,
        r"/(projects|organizations)/[^/]+/roles(/[^/]+)?$",
        "writing a custom role grants permissions, a standing way in",
    ),
    _refused(
        WRITES,
        r"/(workloadidentitypools|workforcepools|oauthclients)([/:]|$)",
        "identity pools, their providers and OAuth clients let outside identities in",
    ),
    _refused(
        None,
        r"^(/v1|/v1beta)?/(token|oauthtoken)$|^/oauth2/v[34]/token$|^/o/oauth2/token$",
        "a token endpoint mints access tokens",
    ),
)
_REQUEST_LINE = re.compile(r"^[ \t]*([a-z]+)[ \t]+((?:/|https?://)\S*)", re.I | re.M)
_PART_HEADER = re.compile(r"^[ \t]*([!#$%&'*+.^_`|~0-9a-z-]+)[ \t]*:[ \t]*(\S*)", re.I | re.M)
_IDENTITY_TRANSFER = frozenset({"7bit", "8bit", "binary"})
_RPC = "$rpc"  # /$rpc/<service>/<method>: an RPC method by name, over HTTP
_PRIVATE_SERVICE_CONNECT = ".p" + GOOGLE_APIS_DOMAIN


def api_at(url: httpx.URL) -> str | None:
    """The Google API ``url`` calls, if its host is one's: ``<api>.googleapis.com``, or Private
    Service Connect's ``<api>-<endpoint>.p.googleapis.com``."""
    host = url.raw_host.decode("ascii")
    if (endpoint := host.removesuffix(_PRIVATE_SERVICE_CONNECT)) != host:
        host = endpoint.partition("-")[0] + GOOGLE_APIS_DOMAIN
    return google_api_of(url.scheme, host, url.port)


def methods_of(method: str, overrides: Iterable[str]) -> frozenset[str]:
    """The methods a Google API may take a call for: as sent, and as overridden."""
    named = (m.strip().upper() for value in overrides for m in value.split(","))
    return frozenset({method.upper(), *(m for m in named if m)})


def google_readings(path: str) -> frozenset[Reading]:
    """Every reading of ``path`` (:func:`path_readings`), and each again with every segment's
    ``;params`` dropped (RFC 2396 path parameters, which a server or a proxy in front may strip:
    ``…/keys;x`` is then ``…/keys``)."""
    readings = path_readings(path)
    without_params = {
        "/" + "/".join(segment.partition(";")[0] for segment in reading) for reading in readings
    }
    return readings.union(*(path_readings(p) for p in without_params))


def judge(apis: Iterable[str], methods: frozenset[str], path: str) -> bool:
    """Raise ``Forbidden`` if a call with ``methods`` to ``path`` (as sent) on ``apis`` is
    refused; ``True`` if it is a batch, whose parts are to be judged."""
    for api in apis:
        if api in REFUSED_APIS:
            raise minting_refused(REFUSED_APIS[api])
    readings = google_readings(path)
    if any(segment.startswith(_RPC) for reading in readings for segment in reading):
        raise minting_uncertain("a call in Google's $rpc form, whose method is not read here")
    for reading in readings:
        joined = "/" + "/".join(reading)
        for call in REFUSED_CALLS:
            if (call.methods is None or methods & call.methods) and call.path.search(joined):
                raise minting_refused(call.what)
    return any(reading[:1] == ("batch",) for reading in readings)


async def screen_credential_operations(apis: frozenset[str], head: RequestHead, body: Body) -> Body:
    """The body to send on in place of ``body`` (the same bytes) once the call, on ``apis``, is
    known to mint nothing; raises ``Forbidden`` (``CREDENTIAL_MINTING_REFUSED``) or
    ``PayloadTooLarge`` otherwise. Only a batch's body is read."""
    methods = methods_of(head.method, head.get_all(METHOD_OVERRIDE))
    if not judge(apis, methods, sent_target(head.target)):
        return body
    encoding = (head.get("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise minting_uncertain(f"a batch in content encoding {encoding!r}")
    content = await read_whole(body, MAX_BATCH_BODY, "a batch request")
    judge_batch(apis, content.decode("latin-1"))
    return iterate_once(content)


def judge_batch(apis: frozenset[str], text: str) -> None:
    """Judge every request line of a batch body as a call of its own (with every method any
    part's ``X-HTTP-Method-Override`` names), whatever part it is in; refuse a part carrying a
    credential of its own (Google runs a part with its own ``Authorization``, API key or
    token parameter: the caller's identity, not the agent's)."""
    headers, lines = _PART_HEADER.findall(text), _REQUEST_LINE.findall(text)
    found = {*in_headers((name for name, _ in headers), CALLER_CREDENTIAL_HEADERS)}
    found.update(name for _, target in lines for name in in_query(target))
    if found:
        raise caller_credential_refused(sorted(found))
    overrides: list[str] = []
    for name, value in headers:
        name = header_name(name)
        if name == "content-transfer-encoding" and value.lower() not in _IDENTITY_TRANSFER:
            raise minting_uncertain(f"a batch part in transfer encoding {value!r}")
        if name == METHOD_OVERRIDE:
            overrides.append(value)
    for method, target in lines:
        reached, path = apis, target
        if target.replace("\\", "/").startswith("//"):
            raise minting_uncertain("a batch part whose target names a host (//host/…)")
        if not target.startswith("/"):
            try:
                url = httpx.URL(target)
                path, api = url.raw_path.decode("ascii"), api_at(url)
            except (httpx.InvalidURL, UnicodeError):
                raise minting_uncertain("a batch part with a malformed URL") from None
            reached = apis if api is None else apis | {api}
        if judge(reached, methods_of(method, overrides), path):
            raise minting_uncertain("a batch within a batch")
