"""botocore's SigV4 signers, pinned to a :class:`~alien.platforms.aws.sigv4.SigningSpec`.

Apart from :mod:`alien.platforms.aws.sigv4` because importing botocore's signer costs about a
tenth of a second, which ``alien debug`` should not spend before its command starts (the signer
is needed from the first request on; see ``sigv4.load_signer``).
"""

from __future__ import annotations

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import ReadOnlyCredentials

from alien.platforms.aws.sigv4 import S3_SIGNING_NAMES, SigningSpec


class _PinnedMixin:
    """Pins the signed header set and the payload hash of botocore's signer."""

    def __init__(self, spec: SigningSpec, secret_key: str) -> None:
        super().__init__(  # type: ignore[call-arg]
            ReadOnlyCredentials("", secret_key, None), spec.service, spec.region
        )
        headers = HTTPHeaders()
        for name, value in spec.headers:
            headers[name] = value  # HTTPHeaders appends: repeated names keep every value
        self._pinned_headers = headers
        self._pinned_payload = spec.payload_hash

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._pinned_headers

    def payload(self, request: AWSRequest) -> str:
        return self._pinned_payload


class _PinnedSigV4(_PinnedMixin, SigV4Auth):
    pass


class _PinnedS3SigV4(_PinnedMixin, S3SigV4Auth):
    pass


def signer_and_request(spec: SigningSpec, secret_key: str) -> tuple[SigV4Auth, AWSRequest]:
    cls = _PinnedS3SigV4 if spec.service in S3_SIGNING_NAMES else _PinnedSigV4
    signer = cls(spec, secret_key)
    # Only the path and query of this URL are read; the host comes from the pinned headers.
    request = AWSRequest(method=spec.method, url="https://sigv4.invalid" + spec.target)
    request.context["timestamp"] = spec.amz_date
    return signer, request
