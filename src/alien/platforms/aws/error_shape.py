"""AWS-shaped error bodies, so that a refusal prints as a readable error in the aws CLI.

botocore parses errors by the service's protocol: JSON protocols (``application/x-amz-json-*``,
rest-json) read ``__type``/``message`` and the ``x-amzn-ErrorType`` header; the query and rest-xml
protocols (STS, IAM, EC2, S3...) read ``<ErrorResponse><Error><Code>``. We pick the shape from the
request's content type, so ``aws dynamodb list-tables`` and ``aws s3 ls`` both print
``An error occurred (AccessDenied) ...: <our reason>``.
"""

from __future__ import annotations

import json
import uuid
from html import escape as _html_escape

from alien.errors import AlienError
from alien.platforms.aws.sigv4 import Headers, header_value
from alien.protocol.http_exchange import RequestHead, UpstreamResponse


def escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as XML character data needs them: ``xml.sax.saxutils.escape``'s
    output, without its import of ``urllib.request`` (on ``alien debug``'s set-up path)."""
    return _html_escape(text, quote=False)


_JSON_TYPES = ("application/x-amz-json", "application/json")


def wants_json(headers: Headers) -> bool:
    """True when the caller speaks a JSON AWS protocol."""
    content_type = (header_value(headers, "content-type") or "").lower()
    return content_type.startswith(_JSON_TYPES) or header_value(headers, "x-amz-target") is not None


def aws_error(
    request_headers: Headers, status: int, code: str, message: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """``(status, headers, body)`` of an AWS error response matching the caller's protocol."""
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-requestid", request_id), ("x-amz-request-id", request_id)]
    if wants_json(request_headers):
        body = json.dumps({"__type": code, "message": message}).encode()
        headers += [("content-type", "application/x-amz-json-1.1"), ("x-amzn-errortype", code)]
    else:
        body = (
            "<?xml version='1.0' encoding='UTF-8'?>\n"
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers.append(("content-type", "text/xml"))
    return status, headers, body


def aws_code(error: AlienError) -> str:
    """The AWS error code recorded on ``error`` or one derived from its status."""
    code = error.details.get("aws_code")
    if isinstance(code, str):
        return code
    return {
        401: "MissingAuthenticationToken",
        403: "AccessDenied",
        404: "NotFound",
        422: "ValidationError",
    }.get(error.status, "InternalFailure")


def aws_status(error: AlienError) -> int:
    """AWS answers authentication failures with 403 and bad input with 400."""
    return {401: 403, 422: 400}.get(error.status, error.status)


def aws_error_for(
    request_headers: Headers, error: AlienError
) -> tuple[int, list[tuple[str, str]], bytes]:
    """The AWS-shaped response for one of our errors."""
    return aws_error(request_headers, aws_status(error), aws_code(error), error.message)


def aws_error_response(head: RequestHead, error: AlienError) -> UpstreamResponse:
    """An AWS-shaped response for ``error``, in the protocol ``head``'s caller speaks."""
    status, headers, body = aws_error_for(head.headers, error)
    return UpstreamResponse.from_bytes(status, headers, body)
