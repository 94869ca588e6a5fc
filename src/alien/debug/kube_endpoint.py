"""The loopback endpoint ``kubectl`` talks to in a pull-model session that offers the cluster.

kubectl sends its bearer token only over HTTPS, so this endpoint serves TLS on 127.0.0.1 with a
certificate made for the session (:mod:`alien.debug.tls`), trusted only through the session's
kubeconfig (``certificate-authority-data``, see :func:`alien.debug.env.kubectl_env`). It accepts
only the session's token, and sends each call through the tunnel as an absolute-form request to
``https://kubernetes.default.svc`` — the cluster's API as the deployment's agent knows it
(:mod:`alien.platforms.kubernetes.upstream`). ``exec``, ``attach`` and ``port-forward`` upgrade
their connection: it is carried as raw bytes once the API server agreed
(:mod:`alien.debug.upgrades`).
"""

from __future__ import annotations

import contextlib

from alien.debug.api_endpoint import api_endpoint
from alien.debug.proxy import LoopbackProxy
from alien.debug.session_dir import SessionDir
from alien.debug.tls import SessionCertificate, server_ssl_context
from alien.errors import ValidationError
from alien.platforms.kubernetes.error_shape import kubernetes_error_response
from alien.protocol.debug_offer import KUBERNETES_API_HOST
from alien.protocol.http_exchange import Upstream


def _route(target: str) -> tuple[str, str]:
    if not target.startswith("/"):
        raise ValidationError("expected a path", field="target")
    return KUBERNETES_API_HOST, f"https://{KUBERNETES_API_HOST}{target}"


async def kubernetes_endpoint(
    stack: contextlib.AsyncExitStack, upstream: Upstream, files: SessionDir, token: str
) -> tuple[LoopbackProxy, bytes]:
    """Start the endpoint for the session (closed with ``stack``); returns it and the PEM
    certificate kubectl must trust."""
    certificate = SessionCertificate.generate()
    cert_file = files.write_bytes("kube-endpoint-cert.pem", certificate.cert_pem)
    key_file = files.write_bytes("kube-endpoint-key.pem", certificate.key_pem)
    proxy = await api_endpoint(
        stack,
        upstream,
        token,
        _route,
        error_response=kubernetes_error_response,
        ssl_context=server_ssl_context(cert_file, key_file),
        upgrades=True,  # exec, attach, port-forward
    )
    return proxy, certificate.cert_pem
