"""Secret-shaped strings are masked whoever produced them; ordinary text is left alone."""

from __future__ import annotations

import pytest

from alien.redaction import REDACTED, Redactor, is_sensitive_key

R = REDACTED
TOKEN_SECRET = "Zm9vYmFyYmF6cXV4cXV1eHh5enp5eDEyMzQ1Njc4OTAx"  # 44 url-safe characters
LOOKUP = "0123456789abcdef"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
SIGV4_HEADER = (
    "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
    "aws4_request, SignedHeaders=host;range;x-amz-date, "
    "Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
)
PRESIGNED = (
    "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=ASIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEaCXVzLWVhc3QtMSJH"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt\n"
    "0gBsJc0HJ8lmR9Kq2ZlkTpYx\n-----END RSA PRIVATE KEY-----"
)

CASES = [
    # alien tokens: the public lookup part stays so an operator can tell which key it was
    (f"Bearer-less ax_key_{LOOKUP}_{TOKEN_SECRET} used", f"Bearer-less ax_key_{LOOKUP}_{R} used"),
    (f"token ax_dep_{LOOKUP}_{TOKEN_SECRET}.", f"token ax_dep_{LOOKUP}_{R}."),
    (f"ax_dg_{LOOKUP}_{TOKEN_SECRET}", f"ax_dg_{LOOKUP}_{R}"),
    (f"(ax_dbg_{TOKEN_SECRET})", f"(ax_dbg_{R})"),
    # AWS access key ids
    ("key AKIAIOSFODNN7EXAMPLE in use", f"key {R} in use"),
    ("ASIAIOSFODNN7EXAMPLE", R),
    # AWS secret keys, in the forms the CLI and SDKs print them
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        f"aws_secret_access_key = {R}",
    ),
    (
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        f"AWS_SECRET_ACCESS_KEY={R}",
    ),
    (
        '{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
        f'{{"SecretAccessKey": "{R}"}}',
    ),
    ("aws_session_token: IQoJb3JpZ2luX2VjEJr", f"aws_session_token: {R}"),
    # HTTP authorization
    ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {R}"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", f"authorization=Basic {R}"),
    ("curl -H 'Authorization: Bearer abcdef' x", f"curl -H 'Authorization: Bearer {R}' x"),
    (
        "{'Authorization': 'Bearer abcdefghijklmnop', 'Accept': 'json'}",
        f"{{'Authorization': '{R}', 'Accept': 'json'}}",
    ),
    ("sent bearer 0123456789abcdefghij to", f"sent bearer {R} to"),
    ("Cookie: session=abc123", f"Cookie: {R}"),
    ("X-Api-Key: k-1234567890", f"X-Api-Key: {R}"),
    # SigV4
    (
        SIGV4_HEADER,
        f"Authorization: AWS4-HMAC-SHA256 {R}, SignedHeaders=host;range;x-amz-date, Signature={R}",
    ),
    (
        PRESIGNED,
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={R}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        f"&X-Amz-Security-Token={R}&X-Amz-Signature={R}",
    ),
    ("X-Amz-Security-Token: IQoJb3JpZ2luX2VjEJr", f"X-Amz-Security-Token: {R}"),
    # PEM private keys (a cut-off block is masked to the end)
    (
        f"key:\n{PEM}\nnext",
        f"key:\n-----BEGIN RSA PRIVATE KEY-----{R}-----END RSA PRIVATE KEY-----\nnext",
    ),
    (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        f"-----BEGIN PRIVATE KEY-----{R}",
    ),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3Blbn\\n-----END OPENSSH PRIVATE KEY-----",
        f"-----BEGIN OPENSSH PRIVATE KEY-----{R}-----END OPENSSH PRIVATE KEY-----",
    ),
    # JWTs
    (f"id_token {JWT} ok", f"id_token {R} ok"),
    # passwords, secrets and tokens in query strings, key=value logs, JSON and URLs
    ("GET /cb?code=x&token=abc123&page=2", f"GET /cb?code=x&token={R}&page=2"),
    ("login user=bob password=hunter2 ok=1", f"login user=bob password={R} ok=1"),
    ('password="correct horse battery"', f'password="{R}"'),
    ("client_secret=s3cr3t;next=1", f"client_secret={R};next=1"),
    ("db_passwd = hunter2", f"db_passwd = {R}"),
    ("password: hunter2", f"password: {R}"),
    ('{"password": "p@ss", "user": "bob"}', f'{{"password": "{R}", "user": "bob"}}'),
    ('{"apiKey":12345678,"n":1}', f'{{"apiKey":"{R}","n":1}}'),
    ('{"refresh_token": null}', f'{{"refresh_token": "{R}"}}'),
    ('{"log": "{\\"password\\": \\"hunter2\\"}"}', f'{{"log": "{{\\"password\\": \\"{R}\\"}}"}}'),
    ("postgresql://alien:s3cret@db:5432/alien", f"postgresql://alien:{R}@db:5432/alien"),
    ("redis://:hunter2@cache:6379/0", f"redis://:{R}@cache:6379/0"),
    (
        # a bare value runs to the next space, quote or separator: a fragment goes with it
        "url=https://x.example/?a=1&access_token=abc#f",
        f"url=https://x.example/?a=1&access_token={R}",
    ),
    ("auth_url=https://x.example/?secret=abc", f"auth_url=https://x.example/?secret={R}"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_secret_shapes_are_masked(text: str, expected: str) -> None:
    assert Redactor().redact_text(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_redacting_again_changes_nothing(text: str, expected: str) -> None:
    assert Redactor().redact_text(expected) == expected


ORDINARY = [
    "2026-03-01T12:00:07.123456Z INFO alien.manager.api: "
    "GET /v1/deployments/dep_01jd3k5v6w7x8y9z0a1b2c3d4e 200 12.3ms",
    "deployment dep_01jd3k5v6w7x8y9z0a1b2c3d4e converged to release "
    "rel_01jd3k5v6w7x8y9z0a1b2c3d4f (3 resources)",
    "Uvicorn running on http://127.0.0.1:8080 (Press CTRL+C to quit)",
    "sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 size=0",
    'etag: "d41d8cd98f00b204e9800998ecf8427e"',
    "arn:aws:s3:::my-bucket/path/to/object.txt and arn:aws:iam::123456789012:role/alien-manage",
    "s3://my-bucket/uploads/2026/report.pdf",
    "command cmd_01jd3k5v6w7x8y9z0a1b2c3d4e leased for 30s (attempt 2/5)",
    "max_tokens=1024 temperature=0.7 top_p=0.9 keyboard=qwerty sort_key=name",
    "The authorization server returned 403 Forbidden",
    "Authorization failed for key key_0123456789abcdef (role viewer)",
    "if token == expected: return True",
    "Note: the secret: keep it safe. The token: short-lived.",
    "password reset email sent to user@example.com",
    'ERROR:  duplicate key value violates unique constraint "uq_deployments_group_name"',
    "https://docs.example.com/guide?page=2&lang=en#section",
    "see RFC 6750 section 2.1 (bearer tokens)",
    "request id 123e4567-e89b-12d3-a456-426614174000",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host",
    "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
    "-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUX\n-----END CERTIFICATE-----",
    "AKIA is the prefix of long-term AWS access key ids; ASIA of temporary ones",
    "tokens look like ax_key_<lookup>_<secret>",
    "time=12:30:45 ratio=3:4 url=https://example.com:8443/x?page=1",
    "postgresql://db.example.com:5432/alien",
    '{"key": "uploads/2026/report.pdf", "size": 1024, "storage": "data"}',
    "def get_secret(name: str) -> str:",
    "logging in with --password-file /run/secrets/db",
    "Signature verified for release rel_01jd3k5v6w7x8y9z0a1b2c3d4f",
    "über naïve café — 日本語のログ",
    "",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().redact_text(text) == text


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "db_passwd",
        "passphrase",
        "pwd",
        "secret",
        "client_secret",
        "clientSecret",
        "aws_secret_access_key",
        "SecretAccessKey",
        "token",
        "access_token",
        "X-Amz-Security-Token",
        "authorization",
        "Proxy-Authorization",
        "api_key",
        "apiKey",
        "API_KEY",
        "x-api-key",
        "private_key",
        "privateKey",
        "cookie",
        "Set-Cookie",
        "credentials",
        "X-Amz-Signature",
        "secret_key",
    ],
)
def test_secret_names(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "max_tokens",
        "tokenizer",
        "keyboard",
        "key",
        "storage_key",
        "sort_key",
        "public_key",
        "passenger",
        "author",
        "authority",
        "id",
        "signed_headers",
        "access_key_id",
        "",
    ],
)
def test_ordinary_names(key: str) -> None:
    assert not is_sensitive_key(key)
