"""Which AWS operation a proxied request performs, for the audit trail.

AWS protocols name the operation in different places: JSON protocols in ``X-Amz-Target``
(``DynamoDB_20120810.ListTables``), the query protocol in an ``Action`` parameter (in the query
string, or first in a form-encoded POST body), and REST protocols only through method, path and
sub-resources (S3). We read what is cheap and never buffer a body: for a form POST only the first
few KiB are looked at (botocore writes ``Action`` first) and then streamed on unchanged.

The name is taken only where the request's protocol puts it, so the caller cannot dress one
operation up as another in the trail: ``X-Amz-Target`` only on a well-formed JSON-protocol
request (the credential screen's own reading,
:func:`~alien.platforms.aws.credential_operations.json_operation`), S3's only
from its method and path (a header or an ``Action`` parameter says nothing to S3), and a form
whose query string and body name different actions is recorded as ambiguous, naming both.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, unquote_plus

from alien.platforms.aws.credential_operations import json_operation
from alien.protocol.http_exchange import Body, RequestHead

PEEK_LIMIT = 8 * 1024
_ACTION_PARAM = re.compile(rb"(?:^|(?<=&))Action=([^&]*)(?=&)")

# Bucket sub-resources: GET/PUT/DELETE /bucket?<sub> → Get/Put/DeleteBucket<Name>.
_BUCKET_SUBRESOURCES = {
    "accelerate": "AccelerateConfiguration",
    "acl": "Acl",
    "analytics": "AnalyticsConfiguration",
    "cors": "Cors",
    "encryption": "Encryption",
    "intelligent-tiering": "IntelligentTieringConfiguration",
    "inventory": "InventoryConfiguration",
    "lifecycle": "LifecycleConfiguration",
    "location": "Location",
    "logging": "Logging",
    "metrics": "MetricsConfiguration",
    "notification": "NotificationConfiguration",
    "object-lock": "ObjectLockConfiguration",
    "ownershipControls": "OwnershipControls",
    "policy": "Policy",
    "policyStatus": "PolicyStatus",
    "publicAccessBlock": "PublicAccessBlock",
    "replication": "Replication",
    "requestPayment": "RequestPayment",
    "tagging": "Tagging",
    "versioning": "Versioning",
    "website": "Website",
}
# Object sub-resources: METHOD /bucket/key?<sub> → operation.
_OBJECT_SUBRESOURCES = {
    ("GET", "acl"): "GetObjectAcl",
    ("PUT", "acl"): "PutObjectAcl",
    ("GET", "tagging"): "GetObjectTagging",
    ("PUT", "tagging"): "PutObjectTagging",
    ("DELETE", "tagging"): "DeleteObjectTagging",
    ("GET", "retention"): "GetObjectRetention",
    ("PUT", "retention"): "PutObjectRetention",
    ("GET", "legal-hold"): "GetObjectLegalHold",
    ("PUT", "legal-hold"): "PutObjectLegalHold",
    ("GET", "attributes"): "GetObjectAttributes",
    ("POST", "restore"): "RestoreObject",
    ("POST", "select"): "SelectObjectContent",
    ("GET", "torrent"): "GetObjectTorrent",
}
_OBJECT_PLAIN = {
    "GET": "GetObject",
    "HEAD": "HeadObject",
    "PUT": "PutObject",
    "DELETE": "DeleteObject",
    "POST": "PostObject",
}
_BUCKET_PLAIN = {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}
_VERB = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}


def _split(target: str) -> tuple[list[str], dict[str, str]]:
    path, _, query = target.partition("?")
    segments = path.split("/", 2)[1:]  # "", bucket, key
    params = dict(parse_qsl(query, keep_blank_values=True))
    return [s for s in segments if s], params


def s3_operation(method: str, target: str, head: RequestHead) -> str:
    """The S3 operation of a path-style request (the debug proxy is always addressed by IP)."""
    segments, params = _split(target)
    if not segments:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if len(segments) == 1:
        return _bucket_operation(method, params)
    return _object_operation(method, params, copy=head.get("x-amz-copy-source") is not None)


def _bucket_operation(method: str, params: dict[str, str]) -> str:
    if method == "GET":
        if "uploads" in params:
            return "ListMultipartUploads"
        if "versions" in params:
            return "ListObjectVersions"
    if method == "POST" and "delete" in params:
        return "DeleteObjects"
    for name in params:
        if name in _BUCKET_SUBRESOURCES and method in _VERB:
            return f"{_VERB[method]}Bucket{_BUCKET_SUBRESOURCES[name]}"
    if method == "GET":
        return "ListObjectsV2" if params.get("list-type") == "2" else "ListObjects"
    return _BUCKET_PLAIN.get(method, f"{method} bucket")


def _object_operation(method: str, params: dict[str, str], *, copy: bool) -> str:
    if "uploadId" in params:
        if method == "PUT":
            return "UploadPartCopy" if copy else "UploadPart"
        return {
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
            "GET": "ListParts",
        }.get(method, f"{method} upload")
    if method == "POST" and "uploads" in params:
        return "CreateMultipartUpload"
    for name in params:
        if (method, name) in _OBJECT_SUBRESOURCES:
            return _OBJECT_SUBRESOURCES[(method, name)]
    if method == "PUT" and copy:
        return "CopyObject"
    return _OBJECT_PLAIN.get(method, f"{method} object")


def operation_from_head(service: str, head: RequestHead) -> str | None:
    """The operation when the head alone says it; ``None`` when a form body must be read too."""
    if service == "s3":
        return s3_operation(head.method, head.target, head)
    named = json_operation(head)
    if named is not None:
        return named
    if _is_form(head):
        return None
    segments, params = _split(head.target)
    if "Action" in params:
        return params["Action"]
    return f"{head.method} /{segments[0]}" if segments else f"{head.method} /"


def _is_form(head: RequestHead) -> bool:
    content_type = (head.get("content-type") or "").lower()
    return head.method == "POST" and content_type.startswith("application/x-www-form-urlencoded")


async def _prefixed(prefix: bytes, rest: Body) -> AsyncIterator[bytes]:
    if prefix:
        yield prefix
    async for chunk in rest:
        yield chunk


async def operation_of(service: str, head: RequestHead, body: Body) -> tuple[str, Body]:
    """The operation and a body to forward in place of ``body`` (same bytes, same order)."""
    known = operation_from_head(service, head)
    if known is not None:
        return known, body
    iterator = aiter(body)
    seen = b""
    ended = False
    while not _ACTION_PARAM.search(seen) and len(seen) < PEEK_LIMIT:
        try:
            seen += await anext(iterator)
        except StopAsyncIteration:
            ended = True
            break
    return operation_in_form(head, seen, ended=ended), _prefixed(seen, iterator)


def operation_in_form(head: RequestHead, seen: bytes, *, ended: bool) -> str:
    """The ``Action`` a form POST names in its query string and in the start of its body
    (``seen``; ``ended``: it is all of it); ``ambiguous: A / B`` when they name several, and
    ``METHOD /`` when they name none."""
    # A parameter is complete once followed by "&", or by the end of the body.
    named = [
        unquote_plus(value.decode("latin-1"))
        for value in _ACTION_PARAM.findall(seen + b"&" if ended else seen)
    ]
    query = [value for name, value in parse_qsl(head.target.partition("?")[2]) if name == "Action"]
    actions = list(dict.fromkeys([*query, *named]))
    if len(actions) > 1:
        return "ambiguous: " + " / ".join(actions)
    return actions[0] if actions else f"{head.method} /"
