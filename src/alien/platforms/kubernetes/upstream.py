"""The agent's Kubernetes API upstream: ``https://kubernetes.default.svc/…`` (how the CLI names
the cluster's API) goes to the configured API server with the agent's service account token, the
server checked against the cluster's CA.

By default everything is the pod's own in-cluster configuration: the API server from
``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``, the token and CA from the service account
mount. The token file is read for every call (projected tokens rotate). Whatever ``Authorization``
arrives is replaced, and a request asking to act as someone else is refused: impersonation
(``Impersonate-*``), a token of the caller's where the API server may read one besides
``Authorization``. A session acts as the agent's service account, never as whom that account may
impersonate nor as a token the engineer holds. A call minting a credential or a standing way in
that would outlive the session (a service account token, a client certificate, RBAC) is refused
too (:mod:`.credential_operations`). Requests that upgrade the connection (``kubectl
exec``, ``attach``, ``port-forward``) go through :mod:`.upgrade`: after ``101`` the stream carries
raw bytes.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path

import httpx

from alien.errors import Forbidden, ValidationError
from alien.platforms.bearer_tokens import (
    TokenSource,
    caller_credential_refused,
    query_names,
    rebased,
)
from alien.platforms.kubernetes.credential_operations import screen_credential_operations
from alien.platforms.kubernetes.upgrade import send_upgrade
from alien.protocol.debug_offer import KUBERNETES_API_HOST
from alien.protocol.http_exchange import Body, RequestHead, UpstreamResponse
from alien.tunnel.forward import ForwardingUpstream, destination, endpoint_base

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
IN_CLUSTER_TOKEN = str(SERVICE_ACCOUNT / "token")
IN_CLUSTER_CA = str(SERVICE_ACCOUNT / "ca.crt")


def in_cluster_server(env: Mapping[str, str] | None = None) -> str | None:
    """``https://host:port`` of the API server a pod is given, or ``None`` outside a cluster."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


IMPERSONATION_PREFIX = "impersonate-"
"""``Impersonate-User``, ``-Group``, ``-Uid``, ``-Extra-<key>``: the API server runs a request
as the user they name when the caller may ``impersonate`` (``kubectl --as``, ``--as-group``)."""


def _refuse_impersonation(head: RequestHead) -> None:
    """``Forbidden`` for a request carrying ``Impersonate-*`` headers. Refused rather than
    stripped: the call would otherwise run as the service account while ``kubectl --as`` believes
    it ran as someone else, so it must fail where the engineer sees it."""
    asked = sorted({n for n, _ in head.headers if n.lower().startswith(IMPERSONATION_PREFIX)})
    if asked:
        raise Forbidden(
            f"a debug session acts as the deployment's service account only: impersonation "
            f"({', '.join(asked)}) is refused",
            field="headers",
            code="IMPERSONATION_NOT_ALLOWED",
        )


BEARER_SUBPROTOCOL = "base64url.bearer.authorization.k8s.io."
"""A WebSocket subprotocol carrying a bearer token (for browsers, which cannot set
``Authorization``)."""


def _caller_credentials(head: RequestHead) -> list[str]:
    """Where ``head`` carries a token of its own besides ``Authorization``: a WebSocket
    subprotocol (kube-apiserver reads it when the ``Authorization`` token fails — an expired
    agent token would let it run the call), an ``access_token`` parameter (OpenShift's API
    server reads that one)."""
    found = ["access_token"] if "access_token" in query_names(head.target) else []
    protocols = (
        p.strip().lower() for v in head.get_all("sec-websocket-protocol") for p in v.split(",")
    )
    if any(p.startswith(BEARER_SUBPROTOCOL) for p in protocols):
        found.append("sec-websocket-protocol")
    return found


def is_kubernetes_api(target: str) -> bool:
    """Whether an absolute-form request target calls the cluster's API."""
    return destination(target) in (
        ("https", KUBERNETES_API_HOST, None),
        ("https", KUBERNETES_API_HOST, 443),
    )


class KubernetesApiUpstream:
    def __init__(self, server: str, tokens: TokenSource, *, ca_file: str | None) -> None:
        """``ca_file``: the CA the API server's certificate must chain to (``None``: the system's
        trust store, for a server with a public certificate)."""
        self._base = endpoint_base(server, "kubernetes.server")
        self._tls = ssl.create_default_context(cafile=ca_file)  # None: the system's trust store
        netloc = httpx.URL(self._base).netloc.decode()
        self._forward = ForwardingUpstream([netloc], verify=self._tls, resolve=None)  # configured
        self._tokens = tokens

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        if not is_kubernetes_api(head.target):
            raise ValidationError("not a Kubernetes API call", field="target")
        _refuse_impersonation(head)
        if found := _caller_credentials(head):
            raise caller_credential_refused(found)
        body = await screen_credential_operations(head, body)
        onward = await rebased(head, self._base, self._tokens)
        if head.get("upgrade") is not None:  # exec, attach, port-forward
            url = httpx.URL(onward.target)
            origin_form = RequestHead(onward.method, url.raw_path.decode("ascii"), onward.headers)
            return await send_upgrade(
                origin_form, body, host=url.host, port=url.port or 443, tls=self._tls
            )
        return await self._forward.send(onward, body)

    async def aclose(self) -> None:
        await self._forward.aclose()
        await self._tokens.aclose()
