"""Google API calls minting a credential or a standing way in that would outlive a debug session
are refused, on whichever API and however the path is spelled; a batch is judged part by part;
everything else passes with its body unchanged (and unread)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from alien.errors import Forbidden, PayloadTooLarge
from alien.platforms.gcp.credential_operations import (
    MAX_BATCH_BODY,
    api_at,
    screen_credential_operations,
)
from alien.protocol.http_exchange import RequestHead
from support.path_spellings import spellings

SA = "/v1/projects/acme-prod/serviceAccounts/app@acme-prod.iam.gserviceaccount.com"


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def screen(api: str, method: str, path: str, body: bytes = b"", *headers: tuple[str, str]) -> bytes:
    """The body the screen lets through a call to ``api`` (the one its host names)."""
    head = RequestHead.create(method, f"https://{api}.googleapis.com{path}", headers)

    async def run() -> bytes:
        parts = _chunks(body[:5], body[5:])
        screened = await screen_credential_operations(frozenset({api}), head, parts)
        return b"".join([chunk async for chunk in screened])

    return asyncio.run(run())


REFUSED = [
    ("iamcredentials", "POST", f"{SA}:generateAccessToken"),  # --impersonate-service-account
    ("iamcredentials", "POST", f"{SA}:generateIdToken"),
    ("iamcredentials", "POST", f"{SA}:signBlob"),
    ("iamcredentials", "POST", f"{SA}:signJwt"),
    ("iamcredentials", "GET", "/v1/anything"),  # the whole API
    ("iam", "POST", f"{SA}:signBlob"),  # IAM's own (deprecated) signing
    ("iam", "POST", f"{SA}:signJwt"),
    ("iam", "POST", f"{SA}/keys"),  # gcloud iam service-accounts keys create
    ("iam", "POST", f"{SA}/keys:upload"),
    ("iam", "POST", f"{SA}/keys/0123abcd:enable"),
    ("iam", "POST", f"{SA}:enable"),  # an account's keys work again
    ("iam", "POST", f"{SA}:undelete"),
    ("iam", "POST", "/v1/projects/-/serviceAccounts/123456789012345678901:undelete"),
    ("iam", "POST", f"{SA}:setIamPolicy"),
    ("iam", "POST", "/v1/projects/acme-prod/roles"),
    ("iam", "PATCH", "/v1/organizations/42/roles/deployer"),
    ("iam", "POST", "/v1/projects/acme-prod/roles/deployer:undelete"),
    ("iam", "POST", "/v1/projects/acme-prod/locations/global/workloadIdentityPools?x=1"),
    ("iam", "PATCH", "/v1/projects/p/locations/global/workloadIdentityPools/gh"),
    ("iam", "POST", "/v1/projects/p/locations/global/workloadIdentityPools/gh/providers"),
    ("iam", "POST", "/v1/projects/p/locations/global/workloadIdentityPools/gh:undelete"),
    ("iam", "POST", "/v1/locations/global/workforcePools"),
    ("iam", "POST", "/v1/projects/p/locations/global/oauthClients/c/credentials"),
    ("cloudresourcemanager", "POST", "/v1/projects/acme-prod:setIamPolicy"),
    ("cloudresourcemanager", "POST", "/v3/folders/42:setIamPolicy"),
    ("pubsub", "POST", "/v1/projects/acme-prod/topics/orders:setIamPolicy"),
    ("compute", "POST", "/compute/v1/projects/p/zones/z/instances/vm/setIamPolicy"),
    ("storage", "PUT", "/storage/v1/b/acme-data/iam"),
    ("storage", "PUT", "/storage/v1/b/acme-data/o/dir%2Freport.csv/iam"),
    ("storage", "PUT", "/storage/v1/b/acme-data/managedFolders/reports/iam"),
    ("storage", "PUT", "/storage/v1/b/acme-data/managedFolders/reports%2F2024/iam"),
    ("storage", "POST", "/storage/v1/b/acme-data/managedFolders/reports/iam"),
    ("storage", "POST", "/storage/v1/projects/acme-prod/hmacKeys?serviceAccountEmail=a@b"),
    ("storage", "PUT", "/storage/v1/projects/acme-prod/hmacKeys/GOOG1EXAMPLE"),
    ("apikeys", "POST", "/v2/projects/acme-prod/locations/global/keys"),
    ("apikeys", "PATCH", "/v2/projects/acme-prod/locations/global/keys/k1"),
    ("oslogin", "POST", "/v1/users/app@acme-prod.iam.gserviceaccount.com:importSshPublicKey"),
    ("sts", "POST", "/v1/token"),
    ("sts", "POST", "/v1beta/token"),
    ("oauth2", "POST", "/token"),
    ("www", "POST", "/oauth2/v4/token"),  # the legacy token endpoint, on another host
    ("logging", "POST", "/v1/token"),  # an endpoint override pointing elsewhere: by path too
    ("iam", "POST", f"{SA}/keys;x"),  # path parameters, which a server may strip
    ("iam", "POST", f"{SA}:signBlob;v=1"),
    ("storage", "PUT", "/storage/v1/b/acme-data;x/iam;y"),
    ("iam", "POST", "/$rpc/google.iam.admin.v1.IAM/CreateServiceAccountKey"),  # RPC over HTTP
    ("storage", "GET", "/$rpc/google.storage.v2.Storage/SetIamPolicy"),
]


@pytest.mark.parametrize(("api", "method", "path"), REFUSED)
def test_minting_calls_are_refused(api: str, method: str, path: str) -> None:
    with pytest.raises(Forbidden) as refused:
        screen(api, method, path, b"{}")
    assert refused.value.code == "CREDENTIAL_MINTING_REFUSED"
    assert refused.value.status == 403 and refused.value.field == "operation"


@pytest.mark.parametrize(
    ("api", "method", "path"),
    [
        ("iam", "GET", f"{SA}/keys"),  # listing keys
        ("iam", "DELETE", f"{SA}/keys/0123abcd"),
        ("iam", "POST", f"{SA}/keys/0123abcd:disable"),
        ("iam", "POST", "/v1/projects/acme-prod/serviceAccounts"),  # an account alone
        ("iam", "POST", f"{SA}:getIamPolicy"),
        ("iam", "GET", "/v1/projects/p/locations/global/workloadIdentityPools"),
        ("iam", "DELETE", "/v1/projects/p/locations/global/workloadIdentityPools/gh"),
        ("cloudresourcemanager", "POST", "/v1/projects/acme-prod:getIamPolicy"),
        ("cloudresourcemanager", "POST", "/v1/projects/acme-prod:testIamPermissions"),
        ("storage", "GET", "/storage/v1/b/acme-data/iam"),
        ("storage", "GET", "/storage/v1/b/acme-data/managedFolders/reports/iam"),
        ("storage", "POST", "/storage/v1/b/acme-data/managedFolders"),  # a folder alone
        ("iam", "POST", f"{SA}:disable"),
        ("iam", "GET", f"{SA}/keys;x"),
        ("storage", "GET", "/storage/v1/projects/acme-prod/hmacKeys"),
        ("storage", "DELETE", "/storage/v1/projects/acme-prod/hmacKeys/GOOG1EXAMPLE"),
        ("storage", "POST", "/upload/storage/v1/b/acme-data/o?uploadType=media&name=x"),
        ("pubsub", "POST", "/v1/projects/acme-prod/topics/orders:publish"),
        ("apikeys", "GET", "/v2/projects/acme-prod/locations/global/keys"),
        ("logging", "GET", "/v2/entries:list"),
    ],
)
def test_everything_else_passes_unread(api: str, method: str, path: str) -> None:
    body = b"POST /storage/v1/projects/p/hmacKeys HTTP/1.1\r\n"  # not read: not a batch
    assert screen(api, method, path, body) == body


@pytest.mark.parametrize("override", ["POST", "post", " POST ", "GET, POST"])
def test_a_method_override_is_judged_as_the_method_it_names(override: str) -> None:
    """Google APIs take ``X-HTTP-Method-Override`` as the call's method."""
    with pytest.raises(Forbidden):
        screen("iam", "GET", f"{SA}/keys", b"", ("X-HTTP-Method-Override", override))


@pytest.mark.parametrize(
    ("base", "api"),
    [
        ("https://iamcredentials.googleapis.com", "iamcredentials"),
        ("https://sts-corp.p.googleapis.com", "sts"),  # Private Service Connect
        ("https://pubsub.googleapis.com:443", "pubsub"),
        ("http://127.0.0.1:8085", None),  # an emulator
        ("https://private.example.com", None),
    ],
)
def test_the_api_an_endpoint_serves(base: str, api: str | None) -> None:
    assert api_at(httpx.URL(base)) == api


def test_an_api_reached_through_another_ones_endpoint_is_judged_as_that_one() -> None:
    """The customer pointed ``logging`` at the IAM credentials host: a call named as logging
    goes there, and is refused as a call to that API."""
    head = RequestHead.create("GET", "https://logging.googleapis.com/v2/entries", [])
    reached = frozenset({"logging", "iamcredentials"})
    with pytest.raises(Forbidden) as refused:
        asyncio.run(screen_credential_operations(reached, head, _chunks()))
    assert "Service Account Credentials" in refused.value.message


def _batch(*parts: str, transfer: str = "binary") -> bytes:
    """A batch body as gcloud writes one: a ``multipart/mixed`` of ``application/http`` parts."""
    out = ""
    for index, request in enumerate(parts):
        out += (
            "--===b===\r\nContent-Type: application/http\r\n"
            f"Content-Transfer-Encoding: {transfer}\r\nContent-ID: <{index}>\r\n\r\n"
            f"{request}\r\n"
        )
    return (out + "--===b===--\r\n").encode()


LIST_OBJECTS = "GET /storage/v1/b/acme-data/o?alt=json HTTP/1.1\r\n\r\n"
DELETE_OBJECT = "DELETE /storage/v1/b/acme-data/o/old HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
BATCH = "/batch/storage/v1"


@pytest.mark.parametrize(
    "body",
    [
        _batch(LIST_OBJECTS, "POST /storage/v1/projects/p/hmacKeys HTTP/1.1\r\n\r\n"),
        _batch("PUT /storage/v1/b/acme-data/iam HTTP/1.1\r\n\r\n{}"),
        _batch("post /storage/v1/projects/p/HMACKEYS?x=1 HTTP/1.1\r\n\r\n"),  # any case
        _batch("POST https://iamcredentials.googleapis.com/v1/x:generateAccessToken HTTP/1.1"),
        _batch("GET https://sts.googleapis.com/v1/anything HTTP/1.1"),
        _batch("GET /storage/v1/projects/p/hmacKeys HTTP/1.1\r\nX-HTTP-Method-Override: POST\r\n"),
    ],
)
def test_a_batch_part_minting_a_credential_is_refused(body: bytes) -> None:
    with pytest.raises(Forbidden) as refused:
        screen("storage", "POST", BATCH, body, ("content-type", "multipart/mixed; boundary=b"))
    assert refused.value.code == "CREDENTIAL_MINTING_REFUSED"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (_batch(LIST_OBJECTS, transfer="base64"), []),
        (_batch(LIST_OBJECTS, transfer="quoted-printable"), []),
        (_batch(LIST_OBJECTS), [("content-encoding", "gzip")]),
        (_batch("POST /batch/storage/v1 HTTP/1.1\r\n\r\n"), []),
        (_batch("GET https://[::1/x HTTP/1.1"), []),
        (_batch("POST //sts.googleapis.com/v1/token HTTP/1.1"), []),  # a host, not a path
        (_batch("POST /\\sts.googleapis.com/v1/token HTTP/1.1"), []),
        (_batch("POST /$rpc/google.iam.admin.v1.IAM/CreateServiceAccountKey HTTP/1.1"), []),
    ],
)
def test_a_batch_that_cannot_be_read_for_certain_is_refused(
    body: bytes, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(Forbidden) as refused:
        screen("storage", "POST", BATCH, body, *headers)
    assert "for certain" in refused.value.message


@pytest.mark.parametrize(
    "part",
    [
        "GET /storage/v1/b/acme-data/o HTTP/1.1\r\nAuthorization: Bearer ya29.engineer\r\n",
        "GET /storage/v1/b/acme-data/o HTTP/1.1\r\nauthorization : Bearer ya29.engineer\r\n",
        "GET /storage/v1/b/acme-data/o HTTP/1.1\r\nX-Goog-Api-Key: AIza-engineer\r\n",
        "GET /storage/v1/b/acme-data/o HTTP/1.1\r\nX_Goog_Api_Key: AIza-engineer\r\n",
        "GET /storage/v1/b/acme-data/o HTTP/1.1\r\nProxy-Authorization: Basic ZW5nOnB3\r\n",
        "GET /storage/v1/b/acme-data/o?access_token=ya29.engineer HTTP/1.1\r\n",
        "GET /storage/v1/b/acme-data/o?alt=json&oauth_token=ya29.engineer HTTP/1.1\r\n",
        "GET /storage/v1/b/acme-data/o?key=AIza-engineer HTTP/1.1\r\n",
        "GET /storage/v1/b/acme-data/o?%24key=AIza-engineer HTTP/1.1\r\n",
        "GET /storage/v1/b/acme-data/o?$KEY=AIza-engineer HTTP/1.1\r\n",
        "GET https://storage.googleapis.com/storage/v1/b/a/o?key=AIza-engineer HTTP/1.1\r\n",
    ],
)
def test_a_batch_part_carrying_a_credential_of_its_own_is_refused(part: str) -> None:
    """Google runs each part with its own credential when it carries one: the engineer's
    identity from inside the customer's network, not the agent's."""
    body = _batch(LIST_OBJECTS, part)
    with pytest.raises(Forbidden) as refused:
        screen("storage", "POST", BATCH, body)
    assert refused.value.code == "CALLER_CREDENTIAL_REFUSED"
    assert refused.value.status == 403
    assert "engineer" not in refused.value.message  # names where, never the credential


def test_a_batch_minting_nothing_passes_with_the_same_bytes() -> None:
    keys_named = "GET /storage/v1/b/acme-data/o?pageToken=key&keys=1 HTTP/1.1\r\n\r\n"
    body = _batch(LIST_OBJECTS, DELETE_OBJECT, keys_named)
    assert screen("compute", "POST", "/batch/compute/v1", body) == body
    assert screen("storage", "POST", BATCH, body) == body


def test_a_batch_past_the_limit_is_refused_unread_beyond_it() -> None:
    read: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            read.append(1)
            yield b"a" * 65536

    async def run() -> None:
        head = RequestHead.create("POST", f"https://storage.googleapis.com{BATCH}", [])
        await screen_credential_operations(frozenset({"storage"}), head, endless())

    with pytest.raises(PayloadTooLarge):
        asyncio.run(run())
    assert len(read) * 65536 <= MAX_BATCH_BODY + 65536


@given(
    st.sampled_from(REFUSED).flatmap(
        lambda call: st.tuples(st.just(call[0]), st.just(call[1]), spellings(call[2]))
    )
)
@example(("iam", "POST", f"{SA}/keys%3Aupload"))
@example(("pubsub", "POST", "/v1/projects/p/topics/t%253AsetIamPolicy"))
@example(("iam", "POST", f"{SA}/keys/x/%2e%2e"))
@example(("storage", "POST", "//storage/v1/projects/p/hmacKeys/"))
def test_a_refused_call_stays_refused_however_its_path_is_spelt(
    call: tuple[str, str, str],
) -> None:
    api, method, path = call
    with pytest.raises(Forbidden):
        screen(api, method, path)
