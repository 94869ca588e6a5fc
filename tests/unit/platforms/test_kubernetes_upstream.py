"""The agent's Kubernetes API upstream: what it accepts and refuses before connecting; the
happy path (the service account token sent to the API server, its CA checked) is end to end in
tests/debug_pull/test_pull_kubectl.py."""

from __future__ import annotations

import json

import pytest

from alien.errors import AlienError, ValidationError
from alien.platforms.bearer_tokens import NoToken
from alien.platforms.kubernetes.error_shape import kubernetes_error_response
from alien.platforms.kubernetes.upstream import (
    KubernetesApiUpstream,
    in_cluster_server,
    is_kubernetes_api,
)
from alien.protocol.http_exchange import RequestHead, iterate_once


@pytest.mark.parametrize(
    ("env", "server"),
    [
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
         "https://10.96.0.1:443"),
        ({"KUBERNETES_SERVICE_HOST": "fd00::1"}, "https://[fd00::1]:443"),
        ({}, None),
    ],
)  # fmt: skip
def test_the_in_cluster_server_comes_from_the_pods_environment(
    env: dict[str, str], server: str | None
) -> None:
    assert in_cluster_server(env) == server


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("https://kubernetes.default.svc/api/v1/pods", True),
        ("https://kubernetes.default.svc:443/version", True),
        ("http://kubernetes.default.svc/version", False),
        ("https://kubernetes.default.svc:6443/version", False),
        ("https://kubernetes.default.svc.evil.example/version", False),
        ("/version", False),
    ],
)
def test_only_the_cluster_api_host_is_the_cluster_api(target: str, expected: bool) -> None:
    assert is_kubernetes_api(target) is expected


async def test_upgrades_and_other_hosts_are_refused_before_connecting() -> None:
    upstream = KubernetesApiUpstream("https://127.0.0.1:9", NoToken(), ca_file=None)
    try:
        exec_head = RequestHead.create(
            "POST",
            "https://kubernetes.default.svc/api/v1/namespaces/x/pods/web/exec",
            [("connection", "Upgrade"), ("upgrade", "websocket")],
        )
        with pytest.raises(AlienError) as refused:
            await upstream.send(exec_head, iterate_once(b""))
        assert refused.value.code == "UPGRADE_NOT_SUPPORTED" and refused.value.status == 501
        other = RequestHead.create("GET", "https://example.com/version", [])
        with pytest.raises(ValidationError):
            await upstream.send(other, iterate_once(b""))
    finally:
        await upstream.aclose()


async def test_a_refusal_reads_as_a_kubernetes_status() -> None:
    error = AlienError("nope", code="SOMETHING")
    response = kubernetes_error_response(RequestHead.create("GET", "/x", []), error)
    body = b"".join([chunk async for chunk in response.body])
    status = json.loads(body)
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["code"] == 500 and status["message"] == "nope (SOMETHING)"
