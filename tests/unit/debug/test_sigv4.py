"""SigV4 parsing and verification against requests signed by botocore itself."""

from __future__ import annotations

from datetime import timedelta
from hashlib import sha256

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sigv4_helpers import KEY_ID, SECRET, presigned, signed

from alien.errors import Unauthenticated
from alien.platforms.aws.sigv4 import (
    CredentialScope,
    caller_scope,
    header_value,
    is_presigned,
    parse_authorization,
    parse_query_auth,
    verify_header_auth,
    verify_query_auth,
    without_query_params,
)

GOOD = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/eu-west-1/s3/aws4_request, "
    "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + "ab" * 32
)


def _aws_code(error: pytest.ExceptionInfo[Unauthenticated]) -> str:
    return error.value.details["aws_code"]


def _verify(method, target, headers, now, **overrides):
    payload = header_value(headers, "x-amz-content-sha256")
    kwargs = {
        "payload_hash": payload,
        "access_key": KEY_ID,
        "secret_key": SECRET,
        "now": now,
    }
    kwargs.update(overrides)
    return verify_header_auth(method, target, headers, **kwargs)


def test_parse_authorization_reads_scope_headers_and_signature() -> None:
    auth = parse_authorization(GOOD)
    assert auth.scope == CredentialScope("AKIDEXAMPLE", "20250101", "eu-west-1", "s3")
    assert auth.signed_headers == ("host", "x-amz-content-sha256", "x-amz-date")
    assert auth.signature == "ab" * 32
    assert str(auth.scope) == "AKIDEXAMPLE/20250101/eu-west-1/s3/aws4_request"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "AWS4-HMAC-SHA1 Credential=a/20250101/r/s/aws4_request, SignedHeaders=host, Signature=x",
        GOOD.replace("aws4_request", "aws5_request"),
        GOOD.replace("20250101", "2025-01-01"),
        GOOD.replace("SignedHeaders=host;", "SignedHeaders=Host;"),
        GOOD.replace("SignedHeaders=host;", "SignedHeaders=host;host;"),
        GOOD.replace("Signature=" + "ab" * 32, "Signature=" + "AB" * 32),
        GOOD + ", Signature=" + "cd" * 32,
        GOOD.replace(", Signature=" + "ab" * 32, ""),
        GOOD.replace("eu-west-1", "EU_WEST"),
    ],
)
def test_parse_authorization_refuses_malformed_headers(value: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        parse_authorization(value)
    assert refused.value.field == "authorization"
    assert _aws_code(refused) == "IncompleteSignature"


@given(st.text(max_size=400))
def test_parse_authorization_never_crashes(value: str) -> None:
    try:
        parse_authorization(value)
    except Unauthenticated as exc:
        assert exc.message


@given(
    st.text(alphabet=st.characters(codec="ascii"), max_size=30),
    st.text(max_size=30),
    st.text(max_size=30),
)
def test_parse_authorization_fuzzed_fields_never_crash(cred: str, names: str, sig: str) -> None:
    value = f"AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={names}, Signature={sig}"
    try:
        parse_authorization(value)
    except Unauthenticated as exc:
        assert exc.field == "authorization"


@given(st.text(max_size=300))
def test_query_auth_parser_never_crashes(query: str) -> None:
    try:
        parse_query_auth("/b/k?" + query)
    except Unauthenticated as exc:
        assert exc.message


def test_verifies_a_botocore_signed_s3_request() -> None:
    method, target, headers, when = signed("PUT", "/bucket/a%20b/c~d", body=b"data")
    auth = _verify(method, target, headers, when + timedelta(seconds=30))
    assert auth.scope.service == "s3"
    assert auth.scope.region == "eu-west-1"


def test_verifies_a_query_protocol_request_with_computed_payload_hash() -> None:
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    method, target, headers, when = signed(
        "POST",
        "/",
        service="sts",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert header_value(headers, "x-amz-content-sha256") is None
    _verify(method, target, headers, when, payload_hash=sha256(body).hexdigest())
    with pytest.raises(Unauthenticated) as refused:
        _verify(method, target, headers, when, payload_hash=sha256(b"other").hexdigest())
    assert _aws_code(refused) == "SignatureDoesNotMatch"


def test_non_s3_paths_are_double_encoded_like_botocore() -> None:
    path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A1%3Afunction%3Af/invocations"
    method, target, headers, when = signed(
        "POST", path, service="lambda", headers={"X-Amz-Content-SHA256": sha256(b"").hexdigest()}
    )
    _verify(method, target, headers, when)


def test_wrong_secret_is_refused() -> None:
    method, target, headers, when = signed(secret="another-secret")
    with pytest.raises(Unauthenticated) as refused:
        _verify(method, target, headers, when)
    assert _aws_code(refused) == "SignatureDoesNotMatch"


def test_foreign_key_id_is_refused() -> None:
    method, target, headers, when = signed(key_id="AKIAFOREIGN000000000")
    with pytest.raises(Unauthenticated) as refused:
        _verify(method, target, headers, when)
    assert _aws_code(refused) == "InvalidClientTokenId"


@pytest.mark.parametrize("offset", [timedelta(minutes=6), -timedelta(minutes=6)])
def test_skewed_date_is_refused(offset: timedelta) -> None:
    method, target, headers, when = signed()
    with pytest.raises(Unauthenticated) as refused:
        _verify(method, target, headers, when + offset)
    assert _aws_code(refused) == "RequestTimeTooSkewed"
    _verify(method, target, headers, when + timedelta(minutes=4))


def test_missing_signed_header_is_refused() -> None:
    method, target, headers, when = signed(headers={"X-Amz-Meta-Owner": "me"})
    stripped = [(k, v) for k, v in headers if k != "x-amz-meta-owner"]
    with pytest.raises(Unauthenticated, match="x-amz-meta-owner"):
        _verify(method, target, stripped, when)


def test_changed_header_or_path_is_refused() -> None:
    method, target, headers, when = signed(headers={"X-Amz-Meta-Owner": "me"})
    changed = [(k, "you" if k == "x-amz-meta-owner" else v) for k, v in headers]
    with pytest.raises(Unauthenticated):
        _verify(method, target, changed, when)
    with pytest.raises(Unauthenticated):
        _verify(method, target + "x", headers, when)
    with pytest.raises(Unauthenticated):
        _verify("DELETE", target, headers, when)


def test_unsigned_request_is_refused() -> None:
    with pytest.raises(Unauthenticated) as refused:
        _verify("GET", "/", [("host", "h")], None)
    assert _aws_code(refused) == "MissingAuthenticationToken"


def test_presigned_url_verifies_until_it_expires() -> None:
    method, target, headers, when = presigned(expires=60)
    assert is_presigned(target)
    auth = verify_query_auth(
        method, target, headers, access_key=KEY_ID, secret_key=SECRET, now=when
    )
    assert auth.expires == 60
    with pytest.raises(Unauthenticated) as expired:
        verify_query_auth(
            method,
            target,
            headers,
            access_key=KEY_ID,
            secret_key=SECRET,
            now=when + timedelta(seconds=61),
        )
    assert expired.value.details["aws_code"] == "AccessDenied"


def test_presigned_url_for_another_key_is_refused() -> None:
    method, target, headers, when = presigned()
    tampered = target.replace("/bucket/key", "/bucket/other")
    with pytest.raises(Unauthenticated) as refused:
        verify_query_auth(method, tampered, headers, access_key=KEY_ID, secret_key=SECRET, now=when)
    assert refused.value.details["aws_code"] == "SignatureDoesNotMatch"


def test_caller_scope_reads_header_or_query() -> None:
    _, target, headers, _ = signed(service="s3", region="us-east-2")
    assert caller_scope(target, headers).region == "us-east-2"
    _, target, headers, _ = presigned(region="ap-south-1")
    assert caller_scope(target, headers).region == "ap-south-1"


def test_without_query_params_keeps_everything_else_byte_for_byte() -> None:
    target = "/b/k?z=%2F&X-Amz-Signature=ab&a=1&&b"
    assert without_query_params(target, ["X-Amz-Signature"]) == "/b/k?z=%2F&a=1&&b"
    assert without_query_params("/b/k?X-Amz-Signature=1", ["X-Amz-Signature"]) == "/b/k"
