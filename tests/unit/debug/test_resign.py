"""Re-signing: which headers go out, what gets signed, and that the result verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from hashlib import sha256

import pytest
from sigv4_helpers import presigned, signed

from alien.errors import Unauthenticated, ValidationError
from alien.platforms.aws.credentials import AwsCredentials
from alien.platforms.aws.endpoints import AwsRoute
from alien.platforms.aws.resign import (
    end_to_end_headers,
    host_header,
    resign_request,
    split_base_url,
)
from alien.platforms.aws.signed_chunks import signing_key
from alien.platforms.aws.sigv4 import (
    header_value,
    parse_authorization,
    parse_query_auth,
    verify_header_auth,
    verify_query_auth,
)

UPSTREAM = AwsCredentials("ASIAUPSTREAM00000001", "upstream-secret", "session-token-xyz")
ROUTE = AwsRoute(
    base_url="https://s3.eu-west-1.amazonaws.com", service="s3", signing_region="eu-west-1"
)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _verify_outgoing(out, now=NOW):
    headers = list(out.headers)
    return verify_header_auth(
        out.method,
        out.target,
        headers,
        payload_hash=header_value(headers, "x-amz-content-sha256"),
        access_key=UPSTREAM.access_key_id,
        secret_key=UPSTREAM.secret_access_key,
        now=now,
    )


def test_resigned_request_verifies_with_the_upstream_credentials() -> None:
    method, target, headers, _ = signed(
        "PUT", "/bucket/a%2Fb/../c d", body=b"x" * 10, headers={"X-Amz-Meta-Who": "me"}
    )
    out = resign_request(method, target, headers, route=ROUTE, credentials=UPSTREAM, now=NOW)
    assert out.url == "https://s3.eu-west-1.amazonaws.com" + target
    assert out.target == target  # byte for byte: no re-quoting, no dot-segment removal
    auth = _verify_outgoing(out)
    assert auth.scope.access_key == UPSTREAM.access_key_id
    assert set(auth.signed_headers) == {
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-meta-who",
        "x-amz-security-token",
    }


def test_caller_auth_hop_by_hop_and_host_headers_are_replaced() -> None:
    method, target, headers, _ = signed("PUT", "/bucket/k", body=b"abc")
    incoming = [
        *headers,
        ("x-amz-security-token", "caller-token"),
        ("connection", "keep-alive, x-private-hop"),
        ("x-private-hop", "1"),
        ("transfer-encoding", "chunked"),
        ("expect", "100-continue"),
        ("content-length", "3"),
        ("user-agent", "aws-cli/1"),
    ]
    out = resign_request(method, target, incoming, route=ROUTE, credentials=UPSTREAM, now=NOW)
    names = [name for name, _ in out.headers]
    for gone in ("connection", "x-private-hop", "transfer-encoding", "expect"):
        assert gone not in names
    for single in ("host", "authorization", "x-amz-date", "x-amz-security-token", "content-length"):
        assert names.count(single) == 1, single
    headers_out = dict(out.headers)
    assert headers_out["host"] == "s3.eu-west-1.amazonaws.com"
    assert headers_out["x-amz-security-token"] == "session-token-xyz"
    assert headers_out["content-length"] == "3"
    assert headers_out["user-agent"] == "aws-cli/1"
    assert names[-1] == "content-length"  # set after signing, and not signed
    assert "content-length" not in parse_authorization(headers_out["authorization"]).signed_headers
    _verify_outgoing(out)


@pytest.mark.parametrize(
    "payload", ["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", sha256(b"z").hexdigest()]
)
def test_payload_hash_passes_through(payload: str) -> None:
    method, target, headers, _ = signed("PUT", "/b/k", payload_hash=payload)
    out = resign_request(method, target, headers, route=ROUTE, credentials=UPSTREAM, now=NOW)
    assert dict(out.headers)["x-amz-content-sha256"] == payload
    _verify_outgoing(out)


@pytest.mark.parametrize(
    ("payload", "trailer"),
    [
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", False),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", True),
    ],
)
def test_signed_chunks_are_chained_from_our_header_signature(payload: str, trailer: bool) -> None:
    method, target, headers, _ = signed(
        "PUT", "/b/k", payload_hash=payload, headers={"X-Amz-Decoded-Content-Length": "5"}
    )
    out = resign_request(method, target, headers, route=ROUTE, credentials=UPSTREAM, now=NOW)
    _verify_outgoing(out)
    assert out.chunks is not None
    seed = parse_authorization(dict(out.headers)["authorization"]).signature
    signer = out.chunks.signer
    assert signer.previous == seed
    assert signer.key == signing_key(UPSTREAM.secret_access_key, "20261122", "eu-west-1", "s3")
    assert (signer.amz_date, signer.scope) == (
        "20261122T120000Z",
        "20261122/eu-west-1/s3/aws4_request",
    )
    assert (out.chunks.trailer, out.chunks.decoded_length) == (trailer, 5)


def test_other_payloads_have_no_chunks_to_resign() -> None:
    method, target, headers, _ = signed("PUT", "/b/k", payload_hash="UNSIGNED-PAYLOAD")
    out = resign_request(method, target, headers, route=ROUTE, credentials=UPSTREAM, now=NOW)
    assert out.chunks is None


def test_a_bad_decoded_length_and_a_missing_payload_hash_are_refused() -> None:
    method, target, headers, _ = signed(
        "PUT",
        "/b/k",
        payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        headers={"X-Amz-Decoded-Content-Length": "-1"},
    )
    with pytest.raises(ValidationError) as bad:
        resign_request(method, target, headers, route=ROUTE, credentials=UPSTREAM, now=NOW)
    assert bad.value.field == "x-amz-decoded-content-length"
    method, target, headers, _ = signed("POST", "/", service="sts", body=b"Action=X")
    with pytest.raises(ValidationError) as missing:
        resign_request(method, target, headers, route=ROUTE, credentials=UPSTREAM, now=NOW)
    assert missing.value.field == "x-amz-content-sha256"


def test_global_service_is_signed_for_the_route_region() -> None:
    body = b"Action=ListRoles&Version=2010-05-08"
    method, target, headers, _ = signed("POST", "/", service="iam", region="eu-west-1", body=body)
    headers.append(("x-amz-content-sha256", sha256(body).hexdigest()))
    route = AwsRoute("https://iam.amazonaws.com", "iam", "us-east-1")
    out = resign_request(method, target, headers, route=route, credentials=UPSTREAM, now=NOW)
    scope = _verify_outgoing(out).scope
    assert (scope.region, scope.service) == ("us-east-1", "iam")


def test_endpoint_path_prefix_is_part_of_the_signed_path() -> None:
    method, target, headers, _ = signed("GET", "/b/k")
    route = AwsRoute("http://127.0.0.1:9000/aws/", "s3", "eu-west-1")
    out = resign_request(method, target, headers, route=route, credentials=UPSTREAM, now=NOW)
    assert out.origin == "http://127.0.0.1:9000"
    assert out.target == "/aws/b/k"
    assert dict(out.headers)["host"] == "127.0.0.1:9000"
    _verify_outgoing(out)


def test_no_session_token_means_no_token_header() -> None:
    method, target, headers, _ = signed("GET", "/b/k")
    plain = AwsCredentials("AKIAPLAIN00000000001", "plain-secret")
    out = resign_request(method, target, headers, route=ROUTE, credentials=plain, now=NOW)
    assert header_value(list(out.headers), "x-amz-security-token") is None


def test_presigned_url_is_resigned_as_presigned() -> None:
    method, target, headers, _ = presigned("/bucket/some%20key?response-content-type=text%2Fplain")
    out = resign_request(method, target, headers, route=ROUTE, credentials=UPSTREAM, now=NOW)
    assert header_value(list(out.headers), "authorization") is None
    assert out.target.startswith("/bucket/some%20key?response-content-type=text%2Fplain&")
    auth = parse_query_auth(out.target)
    assert auth.scope.access_key == UPSTREAM.access_key_id
    assert "X-Amz-Security-Token=session-token-xyz" in out.target
    verify_query_auth(
        method,
        out.target,
        list(out.headers),
        access_key=UPSTREAM.access_key_id,
        secret_key=UPSTREAM.secret_access_key,
        now=NOW + timedelta(seconds=1),
    )
    with pytest.raises(Unauthenticated):
        verify_query_auth(
            method,
            out.target,
            list(out.headers),
            access_key=UPSTREAM.access_key_id,
            secret_key="not-it",
            now=NOW,
        )


def test_header_helpers() -> None:
    assert host_header("https://s3.amazonaws.com") == "s3.amazonaws.com"
    assert host_header("https://h:443/x") == "h"
    assert host_header("http://127.0.0.1:5000") == "127.0.0.1:5000"
    assert host_header("http://[::1]:81") == "[::1]:81"
    assert split_base_url("http://h:1/p/") == ("http://h:1", "/p")
    kept = end_to_end_headers([("a", "1"), ("te", "x"), ("connection", "a")], frozenset())
    assert kept == []


@pytest.mark.parametrize(
    ("method", "target", "extra", "field"),
    [
        # Signed as UTF-8, sent as latin-1: AWS would refuse it and echo what was signed.
        ("PUT", "/b/k", {"X-Amz-Meta-Who": "é"}, "x-amz-meta-who"),
        ("GET", "/b/caf\u00e9", {}, "target"),
        ("GET", "https://elsewhere.example/b/k", {}, "target"),  # signed as a path only
        ("TRACE", "/b/k", {}, "method"),  # would echo the signature back
    ],
)
def test_what_would_not_be_sent_as_signed_is_refused(
    method: str, target: str, extra: dict[str, str], field: str
) -> None:
    _, _, headers, _ = signed("GET", "/b/k", headers=extra or None)
    with pytest.raises(ValidationError) as refused:
        resign_request(method, target, headers, route=ROUTE, credentials=UPSTREAM, now=NOW)
    assert refused.value.field == field
