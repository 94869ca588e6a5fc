"""Kubernetes calls minting a credential or a standing way in that would outlive a debug session
are refused, however the path is spelled; a Secret's create or replace is judged by the type its
body declares; everything else passes with its body unchanged (and unread)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from alien.errors import Forbidden, PayloadTooLarge
from alien.platforms.kubernetes.credential_operations import (
    BOOTSTRAP_TOKEN_TYPE,
    MAX_SCREENED_BODY,
    SERVICE_ACCOUNT_TOKEN_TYPE,
    screen_credential_operations,
)
from alien.protocol.http_exchange import RequestHead
from support.path_spellings import spellings

API = "https://kubernetes.default.svc"
JSON = ("content-type", "application/json")
RBAC = "/apis/rbac.authorization.k8s.io/v1"
CSR = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def screen(method: str, path: str, body: bytes = b"", *headers: tuple[str, str]) -> bytes:
    """The body the screen lets through (split in two chunks on the way in)."""
    head = RequestHead.create(method, API + path, headers)

    async def run() -> bytes:
        screened = await screen_credential_operations(head, _chunks(body[:7], body[7:]))
        return b"".join([chunk async for chunk in screened])

    return asyncio.run(run())


REFUSED = [
    ("POST", "/api/v1/namespaces/shop/serviceaccounts/default/token"),  # kubectl create token
    ("POST", "/api/v1/serviceaccounts/default/token"),  # no namespace: still a TokenRequest
    ("POST", "/api/v1/watch/namespaces/shop/serviceaccounts/default/token"),
    ("GET", "/api/v1/namespaces/shop/serviceaccounts/default/token"),  # any method
    ("POST", CSR),
    ("PUT", f"{CSR}/csr-1/approval"),  # kubectl certificate approve
    ("PATCH", f"{CSR}/csr-1/status"),
    ("PUT", f"{CSR}/csr-1"),
    ("POST", "/apis/certificates.k8s.io/v1beta1/certificatesigningrequests"),
    ("POST", "/apis/certificates.k8s.io/v1alpha1/clustertrustbundles"),
    ("POST", f"{RBAC}/clusterrolebindings"),
    ("POST", f"{RBAC}/namespaces/shop/rolebindings"),
    ("PUT", f"{RBAC}/namespaces/shop/roles/reader"),
    ("PATCH", f"{RBAC}/clusterroles/system:aggregate-to-view"),
    ("POST", "/apis/rbac.authorization.k8s.io/v1beta1/namespaces/shop/roles"),
    ("POST", "/apis/authorization.openshift.io/v1/namespaces/shop/rolebindings"),
    ("POST", "/apis/oauth.openshift.io/v1/oauthaccesstokens"),
    ("PATCH", "/api/v1/namespaces/shop/secrets/db"),  # the stored type is not in a patch
]


@pytest.mark.parametrize(("method", "path"), REFUSED)
def test_minting_calls_are_refused(method: str, path: str) -> None:
    with pytest.raises(Forbidden) as refused:
        screen(method, path, b"{}", JSON)
    assert refused.value.code == "CREDENTIAL_MINTING_REFUSED"
    assert refused.value.status == 403 and refused.value.field == "operation"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/namespaces/shop/serviceaccounts"),  # an account alone mints nothing
        ("GET", "/api/v1/namespaces/shop/serviceaccounts/default"),
        ("GET", "/api/v1/namespaces/shop/secrets/db"),
        ("DELETE", "/api/v1/namespaces/shop/secrets/db"),
        ("GET", f"{RBAC}/clusterrolebindings"),
        ("DELETE", f"{RBAC}/namespaces/shop/rolebindings/old"),
        ("GET", f"{CSR}/csr-1"),
        ("DELETE", f"{CSR}/csr-1"),
        ("POST", "/api/v1/namespaces/shop/pods/web-0/exec?command=sh"),
        ("POST", "/api/v1/namespaces/shop/pods/web-0/portforward"),
        ("POST", "/apis/authentication.k8s.io/v1/tokenreviews"),  # checks, never issues
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
        ("POST", "/api/v1/namespaces/serviceaccounts/token"),  # namespace "serviceaccounts"
        ("POST", "/apis/example.com/v1/namespaces/shop/tokens"),
        ("GET", "/version"),
        ("POST", "/api/v1/namespaces/shop/configmaps"),
    ],
)
def test_everything_else_passes_unread(method: str, path: str) -> None:
    body = b'{"type": "kubernetes.io/service-account-token"}'  # not read: not a Secret
    assert screen(method, path, body, JSON) == body


def _secret(**fields: object) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Secret", **fields}).encode()


def _field(number: int, payload: bytes, wire: int = 2) -> bytes:
    """A protobuf field (length-delimited unless ``wire`` says otherwise; lengths < 128)."""
    return bytes([number << 3 | wire, len(payload)]) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def _keyed(key: bytes, payload: bytes) -> bytes:
    """A length-delimited protobuf field under ``key``, a key varint however spelt."""
    return key + _varint(len(payload)) + payload


def _wide_key(number: int) -> bytes:
    """A length-delimited field's key for ``number``, which may be past protobuf's range: Go's
    decoders read it as ``int32(number)``."""
    return _varint(number << 3 | 2)


def _protobuf(*raws: bytes, encoding: bytes = b"") -> bytes:
    """A Kubernetes protobuf body (``runtime.Unknown`` after the magic) carrying ``raws``."""
    type_meta = _field(1, _field(1, b"v1") + _field(2, b"Secret"))
    return b"k8s\x00" + type_meta + b"".join(_field(2, raw) for raw in raws) + _field(3, encoding)


def _raw_secret(*types: bytes) -> bytes:
    """A ``Secret`` message: metadata (field 1), data (2), then each type (3)."""
    data = _field(2, _field(1, b"password") + _field(2, b"s3cret"))
    return _field(1, _field(1, b"t")) + data + b"".join(_field(3, t) for t in types)


TOKEN = SERVICE_ACCOUNT_TOKEN_TYPE.encode()
TOKEN_SECRET = _secret(metadata={"name": "t"}, type=SERVICE_ACCOUNT_TOKEN_TYPE)
PROTOBUF = ("content-type", "application/vnd.kubernetes.protobuf")
BOOTSTRAP_SECRET = _secret(
    metadata={"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
    type=BOOTSTRAP_TOKEN_TYPE,
    stringData={"token-id": "abcdef", "token-secret": "0123456789abcdef"},
)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (TOKEN_SECRET, JSON),
        (_secret(type="Kubernetes.io/Service-Account-Token"), JSON),
        (
            b'{"kind": "Secret", "type": "Opaque", "type": "kubernetes.io/service-account-token"}',
            JSON,
        ),
        (b'{"kind": "Secret", "Type": "kubernetes.io/service-account-token"}', JSON),  # old servers
        (b'{"kind": "Secret", "typ\\u0065": "kubernetes.io\\/service-account-token"}', JSON),
        (_protobuf(_raw_secret(TOKEN)), PROTOBUF),  # as kubectl create secret sends it
        (_protobuf(_raw_secret(TOKEN, b"Opaque")), PROTOBUF),  # the server keeps the last ...
        (_protobuf(_raw_secret(b"Opaque", TOKEN)), PROTOBUF),  # ... judged: every one
        (_protobuf(_raw_secret(TOKEN), _raw_secret(b"Opaque")), PROTOBUF),
    ],
)
@pytest.mark.parametrize(
    "path", ["/api/v1/namespaces/shop/secrets", "/api/v1/namespaces/shop/secrets/t"]
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_service_account_token_secret_is_refused(
    method: str, path: str, body: bytes, content_type: tuple[str, str]
) -> None:
    with pytest.raises(Forbidden) as refused:
        screen(method, path, body, content_type)
    assert refused.value.code == "CREDENTIAL_MINTING_REFUSED"
    assert SERVICE_ACCOUNT_TOKEN_TYPE in refused.value.message


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (BOOTSTRAP_SECRET, JSON),
        (_secret(type="Bootstrap.Kubernetes.io/Token"), JSON),
        (_protobuf(_raw_secret(BOOTSTRAP_TOKEN_TYPE.encode())), PROTOBUF),
        (_protobuf(_raw_secret(BOOTSTRAP_TOKEN_TYPE.encode(), b"Opaque")), PROTOBUF),
    ],
)
@pytest.mark.parametrize(
    "path",
    ["/api/v1/namespaces/kube-system/secrets", "/api/v1/namespaces/kube-system/secrets/t"],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_bootstrap_token_secret_is_refused(
    method: str, path: str, body: bytes, content_type: tuple[str, str]
) -> None:
    """Such a Secret is a bearer token kube-apiserver accepts when bootstrap-token
    authentication is on (kubeadm's default): a standing credential."""
    with pytest.raises(Forbidden) as refused:
        screen(method, path, body, content_type)
    assert refused.value.code == "CREDENTIAL_MINTING_REFUSED"
    assert BOOTSTRAP_TOKEN_TYPE in refused.value.message


REVIEWED_WIDE_KEY = (
    "6b3873000a0c0a027631120653656372657412310a050a03746f6b9a8080808001236b756265726e657465732e"
    "696f2f736572766963652d6163636f756e742d746f6b656e"
)
"""The review's body: a token Secret whose type is under a key for field ``2**32 + 3``."""


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (TOKEN_SECRET, [("content-type", "application/yaml")]),
        (TOKEN_SECRET, [("content-type", "application/cbor")]),
        (TOKEN_SECRET, [PROTOBUF]),  # JSON as protobuf
        (_protobuf(_raw_secret(b"Opaque"))[:-5], [PROTOBUF]),  # truncated
        (_protobuf(_raw_secret(b"Opaque"), encoding=b"gzip"), [PROTOBUF]),
        (_protobuf(_raw_secret() + _field(3, b"\x01", wire=0)), [PROTOBUF]),  # type as varint
        (_protobuf(_raw_secret() + b"\x1b"), [PROTOBUF]),  # a group
        (b"k8s\x00" + _field(2, _raw_secret(TOKEN), wire=0), [PROTOBUF]),
        # keys the API server reads as int32(number): the type (3), the raw (2) hidden;
        # out of protobuf's range; a key over 5 bytes
        (_protobuf(_raw_secret() + _keyed(_wide_key(2**32 + 3), TOKEN)), [PROTOBUF]),
        (b"k8s\x00" + _keyed(_wide_key(2**32 + 2), _raw_secret(TOKEN)), [PROTOBUF]),
        (_protobuf(_raw_secret() + _keyed(_wide_key(2**29), b"Opaque")), [PROTOBUF]),
        (_protobuf(_raw_secret() + _keyed(_wide_key(0), b"Opaque")), [PROTOBUF]),
        (_protobuf(_raw_secret() + _keyed(b"\x9a\x80\x80\x80\x80\x00", TOKEN)), [PROTOBUF]),
        (bytes.fromhex(REVIEWED_WIDE_KEY), [PROTOBUF]),
        (TOKEN_SECRET, [JSON, ("content-encoding", "gzip")]),
        (b"kind: Secret\ntype: kubernetes.io/service-account-token\n", [JSON]),
        (b"[]", [JSON]),
        (b"", [JSON]),
        (b'{"kind": "Secret", "type": ["kubernetes.io/service-account-token"]}', [JSON]),
        (b'{"type": "Opaque", "x": "\xff"}', [JSON]),  # not UTF-8
    ],
)
def test_a_secret_whose_type_cannot_be_told_is_refused(
    body: bytes, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(Forbidden) as refused:
        screen("POST", "/api/v1/namespaces/shop/secrets", body, *headers)
    assert refused.value.code == "CREDENTIAL_MINTING_REFUSED"
    assert "for certain" in refused.value.message


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (_secret(metadata={"name": "db"}, type="Opaque", data={"p": "cw=="}), [JSON]),
        (_secret(type="kubernetes.io/dockerconfigjson"), [JSON]),
        (_secret(metadata={"name": "db"}), []),  # no type: Opaque; no content type: JSON
        (_secret(data={"type": "a2ubmlvL3NlcnZpY2UtYWNjb3VudC10b2tlbg=="}), [JSON]),  # nested
        (_secret(type="kubernetes.io/tls"), [("content-type", "application/json; charset=utf-8")]),
        (_protobuf(_raw_secret(b"Opaque")), [PROTOBUF]),
        (_protobuf(_raw_secret()), [PROTOBUF]),
        (_protobuf(_raw_secret(b"kubernetes.io/dockerconfigjson")), [PROTOBUF]),
        (_protobuf(_raw_secret(b"Opaque") + _keyed(_wide_key(2**29 - 1), TOKEN)), [PROTOBUF]),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_other_secrets_pass_with_the_same_bytes(
    method: str, body: bytes, headers: list[tuple[str, str]]
) -> None:
    assert screen(method, "/api/v1/namespaces/shop/secrets", body, *headers) == body


def test_a_secret_past_the_api_servers_limit_is_refused_unread_beyond_it() -> None:
    read: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            read.append(1)
            yield b"a" * 65536

    async def run() -> None:
        head = RequestHead.create("POST", API + "/api/v1/namespaces/shop/secrets", [JSON])
        await screen_credential_operations(head, endless())

    with pytest.raises(PayloadTooLarge):
        asyncio.run(run())
    assert len(read) * 65536 <= MAX_SCREENED_BODY + 65536


@given(
    st.sampled_from(REFUSED).flatmap(lambda call: st.tuples(st.just(call[0]), spellings(call[1])))
)
@example(("POST", "/api/v1/namespaces/shop/serviceaccounts/default%2Ftoken"))
@example(("POST", "//api/v1/namespaces/shop/serviceaccounts/default/token/"))
@example(("POST", "/api/v1/namespaces/shop/serviceaccounts/x/%2E%2E/default/token"))
@example(("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings%2F"))
def test_a_refused_call_stays_refused_however_its_path_is_spelt(call: tuple[str, str]) -> None:
    method, path = call
    with pytest.raises(Forbidden):
        screen(method, path, b"{}", JSON)
