"""Azure Storage Shared Key: agreement with the real signer under ``az storage``, and the
properties the debug endpoint and the agent rely on.

The ``SDK_VECTORS`` below are facts recorded from azure-storage-blob 12.31.1 (azure-core 1.41.0):
real client calls (``BlobServiceClient`` with a capturing transport) with ``x-ms-date`` and
``x-ms-client-request-id`` pinned, then signed by the SDK's own ``SharedKeyCredentialPolicy``
under ``KEY`` for ``ACCOUNT``; ``string_to_sign`` is what that policy signed. ``Content-Length:
0`` was added where the HTTP client adds it on the wire after signing (a PUT or DELETE without a
body); the SDK's rule makes it sign the same either way.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from alien.errors import AlienError, Forbidden, ValidationError
from alien.platforms.azure.shared_key import (
    AZURE_ACCOUNT_MISMATCH,
    AZURE_DATE_INVALID,
    AZURE_HEADER_REPEATED,
    AZURE_REQUEST_EXPIRED,
    AZURE_SIGNATURE_MALFORMED,
    AZURE_SIGNATURE_MISMATCH,
    AZURE_SIGNATURE_MISSING,
    AZURE_SIGNATURE_UNSUPPORTED,
    MAX_SKEW,
    format_date,
    new_account_key,
    parse_date,
    parse_key,
    sign,
    signature,
    string_to_sign,
    verify,
)
from alien.protocol.http_exchange import RequestHead

ACCOUNT = "alienvectors"
KEY_TEXT = (
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
)
KEY = bytes(range(64))
SIGNED_AT = datetime(2025, 3, 4, 10, 15, 30, tzinfo=UTC)  # the vectors' x-ms-date


class SdkVector(NamedTuple):
    name: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    signature: str
    string_to_sign: tuple[str, ...]  # its lines


SDK_VECTORS = (
    SdkVector(
        "list_containers",
        "GET",
        "/?comp=list&include=",
        (
            ("x-ms-version", "2026-10-06"),
            ("Accept", "application/xml"),
            ("x-ms-date", "Tue, 04 Mar 2025 10:15:30 GMT"),
            ("x-ms-client-request-id", "00000000-0000-4000-8000-000000000001"),
            ("User-Agent", "azsdk-python-storage-blob/12.31.1 Python/3.12.0 (Linux)"),
        ),
        "dl5nUoYkJ52FqQUZHuPnQnNRq81N+eUngRWeje9bfb8=",
        (
            "GET",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "x-ms-client-request-id:00000000-0000-4000-8000-000000000001",
            "x-ms-date:Tue, 04 Mar 2025 10:15:30 GMT",
            "x-ms-version:2026-10-06",
            "/alienvectors/",
            "comp:list",
            "include:",
        ),
    ),
    SdkVector(
        "put_blob",
        "PUT",
        "/logs/app/run.json",
        (
            ("Content-Length", "13"),
            ("x-ms-blob-type", "BlockBlob"),
            ("x-ms-blob-content-type", "application/json"),
            ("x-ms-version", "2026-10-06"),
            ("Content-Type", "application/octet-stream"),
            ("Accept", "application/xml"),
            ("x-ms-date", "Tue, 04 Mar 2025 10:15:30 GMT"),
            ("x-ms-client-request-id", "00000000-0000-4000-8000-000000000001"),
            ("User-Agent", "azsdk-python-storage-blob/12.31.1 Python/3.12.0 (Linux)"),
        ),
        "gHubk7eC/MPCX1rKpMmwWSwsmslcgnHyv6jgDrF4Pk8=",
        (
            "PUT",
            "",
            "",
            "13",
            "",
            "application/octet-stream",
            "",
            "",
            "",
            "",
            "",
            "",
            "x-ms-blob-content-type:application/json",
            "x-ms-blob-type:BlockBlob",
            "x-ms-client-request-id:00000000-0000-4000-8000-000000000001",
            "x-ms-date:Tue, 04 Mar 2025 10:15:30 GMT",
            "x-ms-version:2026-10-06",
            "/alienvectors/logs/app/run.json",
        ),
    ),
    SdkVector(
        "get_range",
        "GET",
        "/logs/app/run.json",
        (
            ("x-ms-range", "bytes=100-149"),
            ("x-ms-version", "2026-10-06"),
            ("Accept", "application/xml"),
            ("x-ms-date", "Tue, 04 Mar 2025 10:15:30 GMT"),
            ("x-ms-client-request-id", "00000000-0000-4000-8000-000000000001"),
            ("User-Agent", "azsdk-python-storage-blob/12.31.1 Python/3.12.0 (Linux)"),
        ),
        "ioRWzND+/ekeGqMMCoK7/jw25MC0id+wK8pXwuaqsKc=",
        (
            "GET",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "x-ms-client-request-id:00000000-0000-4000-8000-000000000001",
            "x-ms-date:Tue, 04 Mar 2025 10:15:30 GMT",
            "x-ms-range:bytes=100-149",
            "x-ms-version:2026-10-06",
            "/alienvectors/logs/app/run.json",
        ),
    ),
    SdkVector(
        "put_block",
        "PUT",
        "/logs/big.bin?comp=block&blockid=Pz8%2FPw%3D%3D",
        (
            ("Content-Length", "10"),
            ("x-ms-version", "2026-10-06"),
            ("Content-Type", "application/octet-stream"),
            ("Accept", "application/xml"),
            ("x-ms-date", "Tue, 04 Mar 2025 10:15:30 GMT"),
            ("x-ms-client-request-id", "00000000-0000-4000-8000-000000000001"),
            ("User-Agent", "azsdk-python-storage-blob/12.31.1 Python/3.12.0 (Linux)"),
        ),
        "8QCCAUhbJ8saRzXo0Qi71CxAe1xGJLXEiH/lZBVfdDU=",
        (
            "PUT",
            "",
            "",
            "10",
            "",
            "application/octet-stream",
            "",
            "",
            "",
            "",
            "",
            "",
            "x-ms-client-request-id:00000000-0000-4000-8000-000000000001",
            "x-ms-date:Tue, 04 Mar 2025 10:15:30 GMT",
            "x-ms-version:2026-10-06",
            "/alienvectors/logs/big.bin",
            "blockid:Pz8/Pw==",
            "comp:block",
        ),
    ),
    SdkVector(
        "unicode_path",
        "HEAD",
        "/logs/dir%20with%20space/r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.txt",
        (
            ("x-ms-version", "2026-10-06"),
            ("Accept", "application/xml"),
            ("x-ms-date", "Tue, 04 Mar 2025 10:15:30 GMT"),
            ("x-ms-client-request-id", "00000000-0000-4000-8000-000000000001"),
            ("User-Agent", "azsdk-python-storage-blob/12.31.1 Python/3.12.0 (Linux)"),
        ),
        "+N3ozpADJSkEsVG0xIg51t0kT/4SzKXLAymnQKpdXFc=",
        (
            "HEAD",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "x-ms-client-request-id:00000000-0000-4000-8000-000000000001",
            "x-ms-date:Tue, 04 Mar 2025 10:15:30 GMT",
            "x-ms-version:2026-10-06",
            "/alienvectors/logs/dir%20with%20space/r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.txt",
        ),
    ),
    SdkVector(
        "create_container_zero_length",
        "PUT",
        "/new-container?restype=container",
        (
            ("x-ms-meta-owner", "ops"),
            ("x-ms-meta-a-z", "1"),
            ("x-ms-meta-ab", "2"),
            ("x-ms-meta-team", "blue"),
            ("x-ms-version", "2026-10-06"),
            ("Accept", "application/xml"),
            ("x-ms-date", "Tue, 04 Mar 2025 10:15:30 GMT"),
            ("x-ms-client-request-id", "00000000-0000-4000-8000-000000000001"),
            ("User-Agent", "azsdk-python-storage-blob/12.31.1 Python/3.12.0 (Linux)"),
            ("Content-Length", "0"),
        ),
        "aMAaVg2YRFTfpFByhC8zHKd2g1pr+eOMnuVQrWxvR0s=",
        (
            "PUT",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "x-ms-client-request-id:00000000-0000-4000-8000-000000000001",
            "x-ms-date:Tue, 04 Mar 2025 10:15:30 GMT",
            "x-ms-meta-ab:2",
            "x-ms-meta-a-z:1",
            "x-ms-meta-owner:ops",
            "x-ms-meta-team:blue",
            "x-ms-version:2026-10-06",
            "/alienvectors/new-container",
            "restype:container",
        ),
    ),
    SdkVector(
        "list_blobs_prefix",
        "GET",
        "/logs?restype=container&comp=list&prefix=app%2F2025%2003%2F&include=metadata,snapshots",
        (
            ("x-ms-version", "2026-10-06"),
            ("Accept", "application/xml"),
            ("x-ms-date", "Tue, 04 Mar 2025 10:15:30 GMT"),
            ("x-ms-client-request-id", "00000000-0000-4000-8000-000000000001"),
            ("User-Agent", "azsdk-python-storage-blob/12.31.1 Python/3.12.0 (Linux)"),
        ),
        "MxBsDwYkNKrkzp6697UqKtJ5IpHISa7BpGcGbpdS6u0=",
        (
            "GET",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "x-ms-client-request-id:00000000-0000-4000-8000-000000000001",
            "x-ms-date:Tue, 04 Mar 2025 10:15:30 GMT",
            "x-ms-version:2026-10-06",
            "/alienvectors/logs",
            "comp:list",
            "include:metadata,snapshots",
            "prefix:app/2025 03/",
            "restype:container",
        ),
    ),
    SdkVector(
        "delete_if_match",
        "DELETE",
        "/logs/old.txt",
        (
            ("If-Match", '"0x8DC1234"'),
            ("x-ms-version", "2026-10-06"),
            ("Accept", "application/xml"),
            ("x-ms-date", "Tue, 04 Mar 2025 10:15:30 GMT"),
            ("x-ms-client-request-id", "00000000-0000-4000-8000-000000000001"),
            ("User-Agent", "azsdk-python-storage-blob/12.31.1 Python/3.12.0 (Linux)"),
            ("Content-Length", "0"),
        ),
        "Rh+Ph+oQKq24jzqhdYxPQ9lp0nKFocV4L0VuXKYQyFI=",
        (
            "DELETE",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            '"0x8DC1234"',
            "",
            "",
            "",
            "x-ms-client-request-id:00000000-0000-4000-8000-000000000001",
            "x-ms-date:Tue, 04 Mar 2025 10:15:30 GMT",
            "x-ms-version:2026-10-06",
            "/alienvectors/logs/old.txt",
        ),
    ),
)

METHODS = ("GET", "PUT", "HEAD", "DELETE", "POST", "OPTIONS", "PATCH")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"
_TEXT = st.characters(blacklist_categories=("Cs",))
_VALUE_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f")

header_values = st.text(_VALUE_CHARS, max_size=20).map(lambda v: v.strip(" \t"))
paths = st.lists(st.text(_TEXT, max_size=8), max_size=4).map(
    lambda segments: "/" + "/".join(quote(segment, safe="") for segment in segments)
)
query_names = st.text("abcdefghijklmnopqrstuvwxyzABC_", min_size=1, max_size=8).filter(
    lambda name: name.lower() != "sig"
)


def _head(method: str, target: str, headers: list[tuple[str, str]]) -> RequestHead:
    return RequestHead.create(method, target, headers)


def _target(path: str, params: list[tuple[str, str]]) -> str:
    query = "&".join(f"{quote(name)}={quote(value, safe='')}" for name, value in params)
    return f"{path}?{query}" if params else path


@st.composite
def signed_requests(draw: st.DrawFn, *, min_params: int = 0) -> RequestHead:
    """A request signed for ``ACCOUNT`` under ``KEY``, dated ``SIGNED_AT``."""
    params = draw(st.dictionaries(query_names, st.text(_TEXT, max_size=10), min_size=min_params))
    ms_headers = draw(
        st.dictionaries(
            st.text(_NAME_CHARS, min_size=1, max_size=12).map(lambda s: f"x-ms-{s}"),
            header_values,
            max_size=5,
        )
    )
    for fixed in ("x-ms-date", "x-ms-version"):  # set below: a repeat is a request of its own
        ms_headers.pop(fixed, None)
    standard = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "content-length": st.integers(0, 10**12).map(str),
                "content-type": header_values,
                "content-md5": header_values,
                "range": header_values,
                "if-match": header_values,
            },
        )
    )
    headers = [
        ("x-ms-date", format_date(SIGNED_AT)),
        ("x-ms-version", "2026-10-06"),
        ("host", "127.0.0.1:7000"),
        *ms_headers.items(),
        *standard.items(),
    ]
    head = _head(
        draw(st.sampled_from(METHODS)),
        _target(draw(paths), list(params.items())),
        draw(st.permutations(headers)),
    )
    return sign(head, ACCOUNT, KEY)


def _refused(
    head: RequestHead,
    *,
    now: datetime = SIGNED_AT,
    account: str = ACCOUNT,
    key: bytes = KEY,
) -> Forbidden:
    with pytest.raises(Forbidden) as raised:
        verify(head, account, key, now)
    return raised.value


# --- agreement with the Azure SDK --------------------------------------------------------------


@pytest.mark.parametrize("vector", SDK_VECTORS, ids=lambda vector: vector.name)
def test_string_to_sign_and_signature_agree_with_the_azure_sdk(vector: SdkVector) -> None:
    head = _head(vector.method, vector.target, list(vector.headers))
    assert string_to_sign(head, ACCOUNT) == "\n".join(vector.string_to_sign)
    assert signature(head, ACCOUNT, KEY) == vector.signature


@pytest.mark.parametrize("vector", SDK_VECTORS, ids=lambda vector: vector.name)
def test_verify_accepts_what_the_azure_sdk_signed(vector: SdkVector) -> None:
    authorization = ("Authorization", f"SharedKey {ACCOUNT}:{vector.signature}")
    head = _head(vector.method, vector.target, [*vector.headers, authorization])
    verify(head, ACCOUNT, KEY, SIGNED_AT + timedelta(minutes=14))
    assert sign(head, ACCOUNT, KEY).get("authorization") == authorization[1]


def test_x_ms_headers_are_ordered_as_the_service_orders_them() -> None:
    head = _head("GET", "/", [("x-ms-meta-a-z", "1"), ("x-ms-meta-ab", "2"), ("x-ms-a_b", "3")])
    lines = string_to_sign(head, ACCOUNT).split("\n")[12:15]
    assert lines == ["x-ms-a_b:3", "x-ms-meta-ab:2", "x-ms-meta-a-z:1"]


# --- canonicalisation -------------------------------------------------------------------------


def test_query_is_decoded_lowercased_sorted_and_repeated_values_joined() -> None:
    head = _head("GET", "/c?B=2&a=x+y%2Bz&b=1&&c&include=metadata,tags", [])
    resource = string_to_sign(head, "acct").split("\n")[12:]
    assert resource == ["/acct/c", "a:x+y+z", "b:1,2", "c:", "include:metadata,tags"]


def test_path_is_signed_as_sent() -> None:
    encoded = _head("GET", "/c/a%20b", [])
    plain = _head("GET", "/c/a b", [])
    assert string_to_sign(encoded, "acct").endswith("\n/acct/c/a%20b")
    assert signature(encoded, "acct", KEY) != signature(plain, "acct", KEY)


def test_header_values_lose_outer_blanks_and_keep_inner_ones() -> None:
    head = _head("PUT", "/c", [("x-ms-meta-a", " \t v  w \t"), ("content-type", "  text/x  ")])
    lines = string_to_sign(head, "acct").split("\n")
    assert lines[5] == "text/x"
    assert "x-ms-meta-a:v  w" in lines


def test_zero_content_length_signs_as_absent() -> None:
    zero = _head("PUT", "/c", [("content-length", "0")])
    assert signature(zero, ACCOUNT, KEY) == signature(_head("PUT", "/c", []), ACCOUNT, KEY)
    assert string_to_sign(_head("PUT", "/c", [("content-length", "7")]), "a").split("\n")[3] == "7"


def test_date_line_is_empty_when_x_ms_date_is_present() -> None:
    date = ("date", format_date(SIGNED_AT))
    ms_date = ("x-ms-date", format_date(SIGNED_AT))
    assert string_to_sign(_head("GET", "/", [date]), "a").split("\n")[6] == date[1]
    assert string_to_sign(_head("GET", "/", [date, ms_date]), "a").split("\n")[6] == ""


def test_header_names_are_case_insensitive() -> None:
    headers = [("X-MS-Date", format_date(SIGNED_AT)), ("Content-Type", "a/b"), ("X-Ms-Meta-K", "v")]
    raw = RequestHead("PUT", "/c", tuple(headers))  # not lower-cased by create()
    assert string_to_sign(raw, "a") == string_to_sign(_head("PUT", "/c", headers), "a")
    verify(sign(raw, ACCOUNT, KEY), ACCOUNT, KEY, SIGNED_AT)


@pytest.mark.parametrize("name", ["x-ms-meta-a", "X-MS-META-A", "content-type", "range"])
def test_a_signed_header_sent_twice_is_refused(name: str) -> None:
    head = _head("PUT", "/c", [(name, "1"), ("x-ms-meta-b", "2"), (name.upper(), "3")])
    with pytest.raises(ValidationError) as raised:
        string_to_sign(head, ACCOUNT)
    assert raised.value.code == AZURE_HEADER_REPEATED
    assert raised.value.field == name.lower()


# --- sign ------------------------------------------------------------------------------------


def test_sign_replaces_authorization_and_keeps_other_headers_in_order() -> None:
    head = _head(
        "GET",
        "/c",
        [
            ("x-ms-version", "v"),
            ("authorization", "Bearer x"),
            ("x-ms-date", format_date(SIGNED_AT)),
        ],
    )
    signed = sign(head, ACCOUNT, KEY)
    assert [name for name, _ in signed.headers] == ["x-ms-version", "x-ms-date", "authorization"]
    assert signed.get("authorization") == f"SharedKey {ACCOUNT}:{signature(head, ACCOUNT, KEY)}"
    assert sign(signed, ACCOUNT, KEY) == signed


def test_sign_drops_a_date_beside_x_ms_date_and_keeps_a_lone_one() -> None:
    date = ("date", "Mon, 03 Mar 2025 00:00:00 GMT")
    both = sign(_head("GET", "/", [date, ("x-ms-date", format_date(SIGNED_AT))]), ACCOUNT, KEY)
    assert both.get("date") is None
    alone = sign(_head("GET", "/", [date]), ACCOUNT, KEY)
    assert alone.get("date") == date[1]


# --- verify: refusals -------------------------------------------------------------------------


def _signed_get(target: str = "/c", **extra: str) -> RequestHead:
    headers = [("x-ms-date", format_date(SIGNED_AT)), ("x-ms-version", "2026-10-06")]
    return sign(_head("GET", target, [*headers, *extra.items()]), ACCOUNT, KEY)


def test_verify_accepts_a_date_header_when_there_is_no_x_ms_date() -> None:
    head = sign(_head("GET", "/c", [("date", format_date(SIGNED_AT))]), ACCOUNT, KEY)
    verify(head, ACCOUNT, KEY, SIGNED_AT)
    refused = _refused(head, now=SIGNED_AT + timedelta(hours=1))
    assert (refused.code, refused.field) == (AZURE_REQUEST_EXPIRED, "date")


def test_an_unsigned_call_is_refused() -> None:
    head = _head("GET", "/c", [("x-ms-date", format_date(SIGNED_AT))])
    refused = _refused(head)
    assert (refused.code, refused.field) == (AZURE_SIGNATURE_MISSING, "authorization")


@pytest.mark.parametrize(
    "authorization",
    [
        f"SharedKeyLite {ACCOUNT}:" + "A" * 43 + "=",
        "Bearer eyJ0eXAiOiJKV1QifQ.e30.sig",
        "sharedkey " + ACCOUNT + ":" + "A" * 43 + "=",
        "",
    ],
)
def test_other_schemes_are_refused(authorization: str) -> None:
    head = _signed_get().with_header("authorization", authorization)
    refused = _refused(head)
    assert (refused.code, refused.field) == (AZURE_SIGNATURE_UNSUPPORTED, "authorization")
    assert "eyJ0" not in refused.message


def test_a_shared_access_signature_is_refused() -> None:
    for head in (_signed_get("/c/b?sv=2024-08-04&sig=abc%3D"), _head("GET", "/c?SIG=x", [])):
        refused = _refused(head)
        assert (refused.code, refused.field) == (AZURE_SIGNATURE_UNSUPPORTED, "sig")


@pytest.mark.parametrize(
    "credential",
    [ACCOUNT, f"{ACCOUNT}:", f"{ACCOUNT}:abc", f"{ACCOUNT}:" + "A" * 44, f"{ACCOUNT}:" + "é" * 44],
)
def test_a_malformed_credential_is_refused(credential: str) -> None:
    refused = _refused(_signed_get().with_header("authorization", f"SharedKey {credential}"))
    assert (refused.code, refused.field) == (AZURE_SIGNATURE_MALFORMED, "authorization")


def test_a_repeated_authorization_header_is_refused() -> None:
    head = _signed_get()
    twice = RequestHead(head.method, head.target, (*head.headers, head.headers[-1]))
    assert _refused(twice).code == AZURE_SIGNATURE_MALFORMED


def test_another_account_or_key_is_refused() -> None:
    head = _signed_get()
    assert _refused(head, account="someoneelse").code == AZURE_ACCOUNT_MISMATCH
    assert _refused(head, key=bytes(64)).code == AZURE_SIGNATURE_MISMATCH
    other = sign(head, "someoneelse", KEY)  # claims the other account, is verified as ours
    assert _refused(other).code == AZURE_ACCOUNT_MISMATCH
    relabelled = head.with_header("authorization", head.get("authorization").replace(ACCOUNT, "x"))
    assert _refused(relabelled, account="x").code == AZURE_SIGNATURE_MISMATCH


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Wed, 04 Mar 2025 10:15:30 GMT",  # 4 March 2025 is a Tuesday
        "Tue, 4 Mar 2025 10:15:30 GMT",
        "Tue, 04 Mar 2025 10:15:30 +0000",
        "Tue, 04 mar 2025 10:15:30 GMT",
        "2025-03-04T10:15:30Z",
        "Fri, 31 Feb 2025 10:15:30 GMT",
        "Tue, 04 Mar 2025 24:00:00 GMT",
        " Tue, 04 Mar 2025 10:15:30 GMT GMT",
    ],
)
def test_an_unreadable_date_is_refused(value: str) -> None:
    refused = _refused(_signed_get().with_header("x-ms-date", value))
    assert (refused.code, refused.field) == (AZURE_DATE_INVALID, "x-ms-date")


def test_a_missing_date_is_refused() -> None:
    head = sign(_head("GET", "/c", [("x-ms-version", "1")]), ACCOUNT, KEY)
    refused = _refused(head)
    assert (refused.code, refused.field) == (AZURE_DATE_INVALID, "date")


def test_refusals_are_403() -> None:
    assert _refused(_head("GET", "/", [])).status == 403


# --- properties -------------------------------------------------------------------------------


@given(signed_requests(), st.integers(-900, 900))
def test_a_signed_request_verifies_within_fifteen_minutes(head: RequestHead, skew: int) -> None:
    verify(head, ACCOUNT, KEY, SIGNED_AT + timedelta(seconds=skew))


@given(signed_requests(), st.integers(901, 10**7), st.booleans())
def test_a_request_dated_over_fifteen_minutes_away_is_refused(
    head: RequestHead, skew: int, ahead: bool
) -> None:
    now = SIGNED_AT + timedelta(seconds=skew if ahead else -skew)
    refused = _refused(head, now=now)
    assert (refused.code, refused.field) == (AZURE_REQUEST_EXPIRED, "x-ms-date")
    assert timedelta(seconds=900) == MAX_SKEW


def _mutated(head: RequestHead, what: str) -> RequestHead:
    path, sep, query = head.target.partition("?")
    if what == "method":
        return RequestHead(next(m for m in METHODS if m != head.method), head.target, head.headers)
    if what == "path":
        return RequestHead(head.method, f"{path}x{sep}{query}", head.headers)
    if what == "query value":
        first, _, rest = query.partition("&")
        changed = "&".join(part for part in (f"{first}x", rest) if part)
        return RequestHead(head.method, f"{path}?{changed}", head.headers)
    if what == "content-length":
        return head.with_header(what, str(int(head.get(what) or "0") + 1))
    if what == "x-ms header":
        return head.with_header("x-ms-version", head.get("x-ms-version") + "x")
    return head.with_header(what, (head.get(what) or "") + "x")


@given(
    signed_requests(min_params=1),
    st.sampled_from(
        ["method", "path", "query value", "x-ms header", "content-length", "content-type", "range"]
    ),
)
def test_changing_any_signed_element_breaks_the_signature(head: RequestHead, what: str) -> None:
    verify(head, ACCOUNT, KEY, SIGNED_AT)
    refused = _refused(_mutated(head, what))
    assert (refused.code, refused.field) == (AZURE_SIGNATURE_MISMATCH, "authorization")


@given(signed_requests(), st.binary(min_size=1, max_size=64))
def test_another_key_is_refused(head: RequestHead, key: bytes) -> None:
    assume(key != KEY)
    assert _refused(head, key=key).code == AZURE_SIGNATURE_MISMATCH


_AUTHORIZATIONS = st.one_of(
    st.text(max_size=120),
    st.text(max_size=120).map(lambda t: f"SharedKey {t}"),
    st.text(max_size=120).map(lambda t: f"SharedKey {ACCOUNT}:{t}"),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=48).map(
        lambda t: f"SharedKey {ACCOUNT}:{t}"
    ),
)


@given(_AUTHORIZATIONS)
def test_fuzzed_authorization_headers_raise_only_alien_errors(authorization: str) -> None:
    head = _signed_get().with_header("authorization", authorization)
    with pytest.raises(AlienError):
        verify(head, ACCOUNT, KEY, SIGNED_AT)


@given(
    st.text(max_size=10),
    st.text(max_size=60),
    st.lists(st.tuples(st.text(max_size=12), st.text(max_size=20)), max_size=8),
)
def test_fuzzed_requests_raise_only_alien_errors(
    method: str, target: str, headers: list[tuple[str, str]]
) -> None:
    head = RequestHead(method, target, tuple(headers))
    try:
        string_to_sign(head, ACCOUNT)
    except ValidationError as error:
        assert error.code == AZURE_HEADER_REPEATED
    with pytest.raises(AlienError):
        verify(head, ACCOUNT, KEY, SIGNED_AT)


@given(st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.just(UTC)))
def test_dates_round_trip(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    assert parse_date(format_date(moment), "x-ms-date") == moment


# --- keys -------------------------------------------------------------------------------------


def test_parse_key_decodes_base64() -> None:
    assert parse_key(KEY_TEXT, "azure.key") == KEY
    assert parse_key(f"  {KEY_TEXT}\n", "azure.key") == KEY


@pytest.mark.parametrize("value", ["", "   ", "not base64!", "QU JD", "é", "QUJ"])
def test_parse_key_refuses_what_is_not_a_base64_key(value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_key(value, "azure.key_file")
    assert raised.value.field == "azure.key_file"
    assert KEY_TEXT not in raised.value.message


def test_new_account_keys_are_random_64_byte_keys() -> None:
    first, second = new_account_key(), new_account_key()
    assert len(parse_key(first, "key")) == 64
    assert first != second
    assert base64.b64encode(base64.b64decode(first)).decode() == first
