"""A client that uploads to S3 with signed chunks, run as ``alien debug``'s command.

boto3 never sends ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` (the AWS SDKs for Java and Go and
MinIO's clients do, over plain HTTP), so this builds such PUTs by hand, from the AWS
documentation's definition, with botocore signing the headers: the seed is the ``Authorization``
signature, each chunk's signature chains from the one before. Independent of alien's own code.

Usage: ``signed_chunk_client.py BUCKET``; prints ``<name> <sha256>`` of what it sent and of what
it read back for a plain and a trailer upload, then ``forged <status> <aws code> <stored>`` for an
upload whose second chunk was changed after it was signed (a body tampered with on its way).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sys
import zlib

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CHUNK = 64 * 1024
EMPTY = hashlib.sha256(b"").hexdigest()


def _key(secret: str, date: str, region: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _sign(key: bytes, lines: list[str]) -> str:
    return hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).hexdigest()


def put(
    url: str, region: str, path: str, data: bytes, *, trailer: bool, tamper: bool = False
) -> httpx.Response:
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] + [b""]
    checksum = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    trailer_lines = f"x-amz-checksum-crc32:{checksum}\r\n" if trailer else ""
    length = sum(len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in chunks[:-1])
    length += len("0;chunk-signature=") + 64 + 2
    length += len(trailer_lines) + (len("x-amz-trailer-signature:") + 64 + 2 if trailer else 0) + 2
    headers = {
        "Host": url.split("://", 1)[1],
        "Content-Encoding": "aws-chunked",
        "Content-Length": str(length),
        "X-Amz-Content-SHA256": mode,
        "X-Amz-Decoded-Content-Length": str(len(data)),
    }
    if trailer:
        headers["X-Amz-Trailer"] = "x-amz-checksum-crc32"
    request = AWSRequest(method="PUT", url=url + path, headers=headers)
    keys = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    SigV4Auth(keys, "s3", region).add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    key = _key(keys.secret_key, amz_date[:8], region)
    previous = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    body = b""
    for index, chunk in enumerate(chunks):
        digest = hashlib.sha256(chunk).hexdigest()
        lines = ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY, digest]
        previous = _sign(key, lines)
        if tamper and index == 1:  # the second chunk, after it was signed
            chunk = bytes([chunk[0] ^ 1]) + chunk[1:]
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk
        body += b"\r\n" if chunk else b""
    if trailer:
        canonical = trailer_lines.replace("\r\n", "\n").encode()
        lines = ["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous]
        signature = _sign(key, [*lines, hashlib.sha256(canonical).hexdigest()])
        body += f"{trailer_lines}x-amz-trailer-signature:{signature}\r\n".encode()
    body += b"\r\n"
    assert len(body) == length
    sent = dict(request.headers.items())
    return httpx.put(url + path, content=body, headers=sent, timeout=60)


def main() -> None:
    bucket = sys.argv[1]
    url = os.environ["AWS_ENDPOINT_URL"]
    region = os.environ["AWS_DEFAULT_REGION"]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    for name, size, trailer in (("plain", 300_000, False), ("trailer", 200_001, True)):
        data = os.urandom(size)
        answer = put(url, region, f"/{bucket}/{name}", data, trailer=trailer)
        if answer.status_code != 200:
            sys.exit(f"{name}: HTTP {answer.status_code}: {answer.text}")
        back = s3.get_object(Bucket=bucket, Key=name)["Body"].read()
        print(name, hashlib.sha256(data).hexdigest())
        print(f"{name}-back", hashlib.sha256(back).hexdigest())
    answer = put(url, region, f"/{bucket}/forged", os.urandom(200_000), trailer=False, tamper=True)
    code = answer.text.partition("<Code>")[2].partition("</Code>")[0] or "-"
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    stored = any(item["Key"] == "forged" for item in listed)
    print("forged", answer.status_code, code, stored)


if __name__ == "__main__":
    main()
