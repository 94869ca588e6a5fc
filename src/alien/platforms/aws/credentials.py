"""Short-lived credentials for a deployment's management role, refreshed ahead of expiry.

Every debug request is re-signed with credentials obtained by STS ``AssumeRole`` on the
deployment's management role. botocore's own refreshable credentials refresh 15 minutes
(advisory) / 10 minutes (mandatory) before expiry; with 15-minute STS credentials that means an
``AssumeRole`` round trip on *every* request. This provider instead keeps one set of credentials,
hands it out without any I/O, and swaps in a fresh set from a background task well before expiry.
The blocking boto3 call runs in a worker thread, never on the event loop.

The STS clients come from one boto3 session per process unless the caller brings its own: a
fresh session re-reads botocore's data files, ~150 ms that would otherwise sit in front of every
debug tunnel's handshake. boto3 itself is imported only when a provider is made (the CLI's
proxy, which imports this module for :class:`AwsCredentials`, never needs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from alien.errors import PlatformError, ValidationError

if TYPE_CHECKING:
    import boto3

log = logging.getLogger(__name__)

MIN_DURATION = 900
MAX_DURATION = 12 * 3600
_SESSION_NAME_RE = re.compile(r"[^\w+=,.@-]")
_ROLE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")


@dataclass(frozen=True)
class AwsCredentials:
    """A set of AWS credentials. The secret parts never appear in ``repr``."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None

    def remaining(self, now: datetime) -> timedelta:
        """Time left before expiry (a very long time for credentials that never expire)."""
        if self.expiration is None:
            return timedelta.max
        return self.expiration - now


class StaticCredentialSource:
    """Fixed credentials (a local emulator, or credentials refreshed by someone else)."""

    def __init__(self, credentials: AwsCredentials) -> None:
        self._credentials = credentials

    async def get(self) -> AwsCredentials:
        return self._credentials


def role_session_name(debug_session_id: str) -> str:
    """An STS session name that identifies the debug session in the customer's CloudTrail.

    STS allows 2-64 characters of ``[\\w+=,.@-]``; anything else is replaced by ``-``.
    """
    name = _SESSION_NAME_RE.sub("-", f"alien-debug-{debug_session_id}")
    return name[:64]


def _utcnow() -> datetime:
    return datetime.now(UTC)


_shared_session: boto3.Session | None = None
_clients_lock = threading.Lock()  # a boto3 session is not safe to make clients from in parallel


def sts_client(session: boto3.Session | None, **options: Any) -> Any:
    """An STS client from ``session``, or from this process's shared default session."""
    global _shared_session
    with _clients_lock:
        if session is None:
            if _shared_session is None:
                import boto3

                _shared_session = boto3.Session()
            session = _shared_session
        return session.client("sts", **options)


def load_sts_model() -> None:
    """Make this process's shared boto3 session and load what an STS client is built from
    (boto3's import, the session's data files, STS's service model: ~0.2 s, once per process),
    so the first provider made later costs a few milliseconds."""
    sts_client(None, region_name="us-east-1")


class AssumeRoleCredentialProvider:
    """Assumes ``role_arn`` and keeps the resulting credentials fresh.

    ``get()`` returns the cached credentials at once while they have more than ``min_remaining``
    left (only the very first call, or a call after refreshes kept failing, waits for STS).
    ``start()`` runs the refresher: it sleeps until ``refresh_ahead`` before expiry, assumes the
    role again in a thread and swaps the result in; on failure it retries after ``retry_delay``
    while the old credentials are still valid. ``endpoint_url`` points STS elsewhere (an
    emulator, a VPC endpoint).
    """

    def __init__(
        self,
        role_arn: str,
        session_name: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        policy: Mapping[str, Any] | None = None,
        external_id: str | None = None,
        duration_seconds: int = MIN_DURATION,
        refresh_ahead: timedelta = timedelta(minutes=5),
        min_remaining: timedelta = timedelta(seconds=30),
        retry_delay: timedelta = timedelta(seconds=5),
        base_session: boto3.Session | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not _ROLE_ARN_RE.fullmatch(role_arn):
            raise ValidationError(f"not an IAM role ARN: {role_arn!r}", field="role_arn")
        if not MIN_DURATION <= duration_seconds <= MAX_DURATION:
            raise ValidationError(
                f"duration_seconds must be {MIN_DURATION}..{MAX_DURATION}", field="duration_seconds"
            )
        if not timedelta(0) < refresh_ahead < timedelta(seconds=duration_seconds):
            raise ValidationError(
                "refresh_ahead must be positive and shorter than the credential lifetime",
                field="refresh_ahead",
            )
        if policy is not None and "Statement" not in policy:
            raise ValidationError("a session policy needs a Statement", field="policy")
        self._request: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": duration_seconds,
        }
        if policy is not None:
            self._request["Policy"] = json.dumps(policy, separators=(",", ":"))
        if external_id is not None:
            self._request["ExternalId"] = external_id
        self._sts = sts_client(
            base_session,
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )
        self._refresh_ahead = refresh_ahead
        self._min_remaining = min_remaining
        self._retry_delay = retry_delay
        self._clock = clock
        self._current: AwsCredentials | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> AwsCredentials | None:
        """The credentials in hand, if any (no I/O)."""
        return self._current

    def _assume_role(self) -> AwsCredentials:
        try:
            response = self._sts.assume_role(**self._request)
        except (BotoCoreError, ClientError) as exc:
            raise PlatformError(
                f"AssumeRole on {self._request['RoleArn']} failed: {exc}", field="role_arn"
            ) from exc
        creds = response["Credentials"]
        return AwsCredentials(
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
            expiration=creds["Expiration"].astimezone(UTC),
        )

    async def refresh(self) -> AwsCredentials:
        """Assume the role now (in a worker thread) and make the result current."""
        async with self._lock:
            fresh = await asyncio.to_thread(self._assume_role)
            self._current = fresh
        async with self._changed:
            self._changed.notify_all()
        log.info("assumed %s, valid until %s", self._request["RoleArn"], fresh.expiration)
        return fresh

    async def get(self) -> AwsCredentials:
        """Credentials with at least ``min_remaining`` left; STS is called only if none are."""
        current = self._current
        if current is not None and current.remaining(self._clock()) > self._min_remaining:
            return current
        async with self._lock:
            current = self._current
            if current is not None and current.remaining(self._clock()) > self._min_remaining:
                return current
        return await self.refresh()

    async def next_refresh(self) -> AwsCredentials:
        """Wait until the next successful refresh and return its credentials."""
        async with self._changed:
            before = self._current
            await self._changed.wait_for(lambda: self._current is not before)
            assert self._current is not None
            return self._current

    def _seconds_until_refresh(self) -> float:
        current = self._current
        if current is None:
            return 0.0
        return max(0.0, (current.remaining(self._clock()) - self._refresh_ahead).total_seconds())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._seconds_until_refresh())
            try:
                await self.refresh()
            except Exception as exc:  # keep refreshing whatever went wrong; the next try may work
                log.warning("credential refresh failed, retrying: %s", exc)
                await asyncio.sleep(self._retry_delay.total_seconds())

    async def start(self) -> None:
        """Fetch the first credentials (errors surface here) and start refreshing ahead."""
        if self._task is not None:
            return
        await self.get()
        self._task = asyncio.create_task(self._refresh_forever(), name="aws-credential-refresh")

    async def aclose(self) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> AssumeRoleCredentialProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
