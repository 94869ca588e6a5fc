"""Kubernetes API calls a debug session may not make: those minting a credential, or granting
a standing way in, that would outlive the session (within what the agent's service account may
do). Refused before any connection, as a 403 ``Status`` ``CREDENTIAL_MINTING_REFUSED``:

* a service account token: TokenRequest (``serviceaccounts/<name>/token``, ``kubectl create
  token``), or a Secret of type ``kubernetes.io/service-account-token``, which the token
  controller fills with a token that never expires;
* a bootstrap token: a Secret of type ``bootstrap.kubernetes.io/token`` is itself a bearer
  token the API server accepts (as ``system:bootstrap:<id>``) when bootstrap-token
  authentication is on, as kubeadm sets it up;
* a client certificate: any write in ``certificates.k8s.io`` (creating a
  CertificateSigningRequest, its ``/approval`` and ``/status``, which a signer turns into a
  certificate the API server accepts);
* permissions: creating or changing a Role, ClusterRole, RoleBinding or ClusterRoleBinding, in
  any API group (OpenShift serves bindings under ``authorization.openshift.io`` too);
* OpenShift's OAuth access and authorize tokens, and OAuth clients.

A call is read as kube-apiserver reads it (``RequestInfoFactory``: ``/api/v1/…`` or
``/apis/<group>/<version>/…``, ``namespaces/<ns>/`` before the resource, then name and
subresource; the legacy ``watch/`` and ``proxy/`` prefixes skipped), under every reading of its
path (:mod:`alien.platforms.path_readings`): refused when any reading is. Methods are compared in
upper case.

A Secret's type is in its body: a create (``POST``) or replace (``PUT``) of a core Secret is read
whole (at most :data:`MAX_SCREENED_BODY`, the API server's own limit on a request body), as JSON
or protobuf (:mod:`.secret_type`; anything else is refused), and refused if any type it may be
read to declare is one of :data:`REFUSED_SECRET_TYPES`. A ``PATCH`` of a Secret is refused
whatever it says: the type is the stored object's, which the patch does not show, and
re-pointing an existing token Secret at another service account has the token controller mint a
token for that one (``kubectl apply``/``edit``/``patch`` of a Secret therefore fail in a
session; ``create`` and ``replace`` work).

Not refused, and why: creating a ServiceAccount (mints nothing since Kubernetes 1.24; before,
the token controller also made a token Secret for it), reading Secrets and ``pods/exec`` (they
reach credentials that exist already, which the session may see: it is what it is for),
TokenReview and access reviews (they check, never issue), and workloads that run as a service
account (a pod, a CronJob): what those do after the session is the service account's
permissions to bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from alien.platforms.credential_screen import minting_refused, minting_uncertain, read_whole
from alien.platforms.kubernetes.secret_type import declared_types
from alien.platforms.path_readings import Reading, path_readings, sent_target
from alien.protocol.http_exchange import Body, RequestHead, iterate_once

MAX_SCREENED_BODY = 3 * 1024 * 1024
"""kube-apiserver's ``MaxRequestBodyBytes``: a larger Secret would be refused there anyway."""
SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"
BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"
REFUSED_SECRET_TYPES: dict[str, str] = {
    SERVICE_ACCOUNT_TOKEN_TYPE: "is given a service account token that never expires",
    BOOTSTRAP_TOKEN_TYPE: "is a bootstrap token, which the API server accepts as a credential",
}
"""Secret types refused (compared case-insensitively), with what such a Secret is."""
WRITES = frozenset({"POST", "PUT", "PATCH"})
GRANTING = frozenset({"roles", "clusterroles", "rolebindings", "clusterrolebindings"})
OPENSHIFT_OAUTH = frozenset({"oauthaccesstokens", "oauthauthorizetokens", "oauthclients"})
CERTIFICATES_GROUP = "certificates.k8s.io"
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_SPECIAL_VERBS = frozenset({"watch", "proxy"})


@dataclass(frozen=True)
class ResourceCall:
    """What a resource request addresses, as kube-apiserver's ``RequestInfo`` names it."""

    group: str  # "" for the core group (/api/v1)
    resource: str
    name: str | None
    subresource: str | None


def resource_call(reading: Reading) -> ResourceCall | None:
    """The resource call of a path reading, or ``None`` for a non-resource path (``/version``,
    ``/apis/<group>``)."""
    if len(reading) < 3 or reading[0] not in ("api", "apis"):
        return None
    if reading[0] == "api":
        group, parts = "", reading[2:]
    elif len(reading) < 4:
        return None
    else:
        group, parts = reading[1], reading[3:]
    if len(parts) > 1 and parts[0] in _SPECIAL_VERBS:
        parts = parts[1:]
    if len(parts) > 2 and parts[0] == "namespaces" and parts[2] not in _NAMESPACE_SUBRESOURCES:
        parts = parts[2:]
    return ResourceCall(
        group,
        parts[0],
        parts[1] if len(parts) > 1 else None,
        parts[2] if len(parts) > 2 else None,
    )


def refusal(method: str, call: ResourceCall) -> str | None:
    """What ``call`` would mint, if it is refused whatever its body says; else ``None``."""
    if call.resource == "serviceaccounts" and call.subresource == "token":
        return "TokenRequest mints a service account token"
    if method not in WRITES:
        return None
    if call.group == CERTIFICATES_GROUP or call.resource == "certificatesigningrequests":
        return "a certificate signing request, once signed, is a client certificate"
    if call.resource in GRANTING:
        return f"writing {call.resource} grants permissions, a standing way in"
    if call.resource in OPENSHIFT_OAUTH:
        return f"OpenShift OAuth {call.resource} are credentials"
    return None


def _writes_a_secret(method: str, call: ResourceCall) -> bool:
    return call.group == "" and call.resource == "secrets" and method in WRITES


async def screen_credential_operations(head: RequestHead, body: Body) -> Body:
    """The body to send on in place of ``body`` (the same bytes) once the call is known to mint
    nothing; raises ``Forbidden`` (``CREDENTIAL_MINTING_REFUSED``) or ``PayloadTooLarge``
    otherwise. Only the body of a Secret's create or replace is read."""
    method = head.method.upper()
    readings = path_readings(sent_target(head.target))
    calls = {call for r in readings if (call := resource_call(r)) is not None}
    for call in calls:
        if (what := refusal(method, call)) is not None:
            raise minting_refused(what)
    if not any(_writes_a_secret(method, call) for call in calls):
        return body
    if method == "PATCH":
        raise minting_uncertain("a patch does not show the type of the Secret it changes")
    content = await read_whole(body, MAX_SCREENED_BODY, "a Secret")
    for secret_type in declared_types(head, content):
        refused = secret_type.casefold()
        if (what := REFUSED_SECRET_TYPES.get(refused)) is not None:
            raise minting_refused(f"a Secret of type {refused} {what}")
    return iterate_once(content)
