"""Debug sessions served from inside the customer's environment (pull model).

The manager cannot reach into the environment, so when a debug session of this deployment
connects it sends ``tunnel_open`` on the agent's channel; the agent then dials the session's
tunnel itself — a second outbound WebSocket, authenticated with its deployment token and the
one-time credential, or, for an agent that long-polls (``leg="http"``), a leg of plain requests
(:mod:`alien.tunnel.http_leg`) — and answers every stream the manager relays from the
engineer's CLI:

* ``debug_info``: what this agent offers (:class:`~alien.protocol.agent_channel.DebugOffer`), so
  the CLI can set up the debugged command's environment;
* an AWS request (origin form, already verified by the CLI's loopback proxy against the session
  keys): re-signed with the agent's **own** AWS identity — the role in the configuration, assumed
  with boto3's default chain and named ``alien-debug-<session>`` in CloudTrail, or that chain's
  credentials directly — within the configured region and services;
* a Google API call (absolute form to ``https://<api>.googleapis.com``): to an allowed API,
  with the agent's own access token (:mod:`alien.platforms.gcp.upstream`);
* a Kubernetes API call (absolute form to ``https://kubernetes.default.svc``): to the cluster's
  API server, with the agent's service account token (:mod:`alien.platforms.kubernetes.upstream`);
* an Azure Blob storage call (absolute form to ``https://<account>.blob.core.windows.net``): to
  the configured account's blob endpoint, signed with its key
  (:mod:`alien.platforms.azure.upstream`);
* an HTTP forward-proxy request (absolute form) and ``CONNECT host:port`` (HTTPS through the
  proxy, relayed as raw bytes): only to destinations on the configured allowlist.

What a session may reach is the customer's decision, not the vendor's: it lives in
``<state-dir>/debug.json`` (read again for every session, so edits apply to the next one) and
the agent advertises the ``debug_tunnels`` capability only while that file exists (checked every
few seconds: :class:`alien.agent.link.ManagerLink` reconnects when it appears or goes). Refusals and
failures of the agent's own are answered with ``alien-error: <code>`` so the manager's audit can
tell them from a destination's answer. The tunnel ends when the manager closes it (session
closed, revoked, expired) and at the session's expiry at the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
from botocore.credentials import Credentials, RefreshableCredentials

from alien.agent.debug_config import (
    CONFIG_FILE,
    AwsDebugConfig,
    AzureDebugConfig,
    DebugConfig,
    GcpDebugConfig,
    KubernetesDebugConfig,
    aws_policy,
    config_path,
    kubernetes_server,
    load_config,
)
from alien.agent.session_limits import narrowed
from alien.debug.proxy import alien_error_response
from alien.errors import AlienError, Forbidden, PlatformError, ValidationError
from alien.platforms.aws import preload
from alien.platforms.aws.credential_operations import SESSION_POLICY
from alien.platforms.aws.credentials import (
    AssumeRoleCredentialProvider,
    AwsCredentials,
    role_session_name,
)
from alien.platforms.aws.error_shape import aws_error_response
from alien.platforms.aws.upstream import AwsResigningUpstream
from alien.platforms.azure.error_shape import azure_error_response
from alien.platforms.azure.upstream import AzureBlobUpstream, azure_blob_account
from alien.platforms.bearer_tokens import NoToken, TokenFile, TokenSource
from alien.platforms.gcp.error_shape import google_error_response
from alien.platforms.gcp.tokens import MetadataToken
from alien.platforms.gcp.upstream import GoogleApiUpstream, google_api
from alien.platforms.kubernetes.error_shape import kubernetes_error_response
from alien.platforms.kubernetes.upstream import KubernetesApiUpstream, is_kubernetes_api
from alien.protocol.agent_channel import (
    CAPABILITY_DEBUG_LIMITS,
    CAPABILITY_DEBUG_SPLICE,
    CAPABILITY_DEBUG_TUNNELS,
    ManagerMessage,
    TunnelOpen,
)
from alien.protocol.debug_offer import DEBUG_INFO_KIND
from alien.protocol.frames import ErrorCode
from alien.protocol.http_exchange import Body, RequestHead, ResponseHead, UpstreamResponse, marked
from alien.tunnel import WIDE_WINDOWS, TunnelConnection, TunnelStream
from alien.tunnel.errors import UpstreamUnreachable
from alien.tunnel.forward import (
    NOT_ALLOWED,
    ForwardingUpstream,
    HostAllowlist,
    Resolver,
    absolute_url,
    system_resolver,
    valid_authority,
)
from alien.tunnel.http import serve_http_stream
from alien.tunnel.http_leg import HttpLegClient, LegRefused
from alien.tunnel.proxy_connect import describe, http_proxy, open_connection
from alien.tunnel.transport import MessageTransport
from alien.tunnel.websocket_client import HandshakeFailed, HandshakeRefused, dial, websocket_url

log = logging.getLogger("alien.agent.debug")

CREDENTIAL_HEADER = "Alien-Tunnel-Credential"
DIAL_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
EXPIRY_SLACK = 5.0
"""Seconds past the session's expiry the agent keeps a tunnel the manager failed to close."""
READ_SIZE = 256 * 1024

# --- a session's Google and Kubernetes upstreams, from the customer's configuration ---------


def _google_apis(gcp: GcpDebugConfig) -> GoogleApiUpstream:
    tokens: TokenSource
    if gcp.credentials == "metadata":
        tokens = MetadataToken()
    elif gcp.token_file is not None:
        tokens = TokenFile(Path(gcp.token_file), field="gcp.token_file")
    else:
        tokens = NoToken()
    return GoogleApiUpstream(gcp.allowed_apis, tokens, endpoints=gcp.endpoints)


def _kubernetes_api(kubernetes: KubernetesDebugConfig) -> KubernetesApiUpstream:
    tokens = TokenFile(Path(kubernetes.token_file), field="kubernetes.token_file")
    return KubernetesApiUpstream(kubernetes_server(kubernetes), tokens, ca_file=kubernetes.ca_file)


def _azure_blobs(azure: AzureDebugConfig) -> AzureBlobUpstream:
    return AzureBlobUpstream(azure.account, azure.key(), azure.endpoint)


# --- the agent's AWS identity ---------------------------------------------------------------


class AmbientCredentials:
    """The agent process's own AWS credentials (boto3's default chain: environment, profile,
    container or instance role). Refreshable ones are refreshed by botocore, off the loop."""

    def __init__(self, session: boto3.Session | None = None) -> None:
        self._session = session or boto3.Session()
        self._credentials: Credentials | None = None

    async def get(self) -> AwsCredentials:
        credentials = self._credentials
        if credentials is None:
            credentials = await asyncio.to_thread(self._session.get_credentials)
            if credentials is None:
                raise PlatformError(
                    "this agent has no AWS credentials (boto3's default chain found none)",
                    field="aws",
                    details={"aws_code": "ServiceUnavailable"},
                )
            self._credentials = credentials
        if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
            frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
        else:
            frozen = credentials.get_frozen_credentials()
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    async def aclose(self) -> None:
        return None


def _credentials(
    aws: AwsDebugConfig, session_id: str
) -> AssumeRoleCredentialProvider | AmbientCredentials:
    if aws.role_arn is None:
        return AmbientCredentials()
    return AssumeRoleCredentialProvider(
        aws.role_arn,
        role_session_name(session_id),
        region=aws.region,
        endpoint_url=aws.endpoint_url,
        external_id=aws.external_id,
        policy=SESSION_POLICY,  # no credentials minted that would outlive the session
    )


# --- serving one session ---------------------------------------------------------------------


class ConnectUpstream:
    """``CONNECT host:port``: a raw byte stream to an allowed destination (the request body is
    what the client sends, the response body what the destination answers). The name is
    resolved and its addresses screened here, and the checked address is what is connected to
    (:meth:`HostAllowlist.address`): the vendor may control an allowed name's DNS. Where the
    environment's proxy applies to the name (``HTTPS_PROXY``, as for any TLS destination, unless
    ``NO_PROXY`` exempts it), the tunnel is asked of it for that checked address, never the
    name: the proxy does not resolve a vendor-controlled name again."""

    def __init__(self, allow: HostAllowlist, resolve: Resolver = system_resolver) -> None:
        self._allow = allow
        self._resolve = resolve

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        host, port = _authority(head.target)
        if not self._allow.allows("https", host, port):
            raise _not_allowed(f"{host}:{port}")
        address = await self._allow.address("https", host, port, self._resolve)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await open_connection(address, port, http_proxy(True, host, port))
        except (OSError, TimeoutError) as exc:
            raise UpstreamUnreachable(
                f"could not reach {host}:{port}: {describe(exc)}", field="host"
            ) from None
        pump = asyncio.create_task(_to_socket(body, writer), name=f"connect-{host}:{port}")

        async def close() -> None:
            pump.cancel()
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await pump  # its own cancellation, not ours
            with contextlib.suppress(Exception):
                await writer.wait_closed()

        return UpstreamResponse(ResponseHead.create(200, []), _from_socket(reader), close)


async def _to_socket(body: Body, writer: asyncio.StreamWriter) -> None:
    async for chunk in body:
        writer.write(chunk)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def _from_socket(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while chunk := await reader.read(READ_SIZE):
        yield chunk


def _authority(target: str) -> tuple[str, int]:
    """``host`` and ``port`` of a CONNECT target (``host:port`` or ``[v6]:port``). Only an ASCII
    name or address is taken: anything else (Unicode, control characters) never reaches DNS."""
    if not valid_authority(target):
        raise ValidationError("CONNECT needs a host:port target", field="target")
    try:
        parts = urlsplit(f"//{target}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None or parts.username or parts.path:
        raise ValidationError("CONNECT needs a host:port target", field="target")
    return host, port


def _not_allowed(destination: str) -> Forbidden:
    return Forbidden(
        f"{destination} is not on this deployment's debug egress allowlist "
        f"(set by the customer in the agent's {CONFIG_FILE})",
        field="host",
        code=NOT_ALLOWED,
    )


def _is_aws(head: RequestHead) -> bool:
    return head.method != "CONNECT" and head.target.startswith("/")


def error_response(head: RequestHead, error: AlienError) -> UpstreamResponse:
    """The agent's own answer: AWS-shaped for AWS callers, Google-shaped for Google API calls,
    alien's JSON otherwise, marked with ``alien-error`` either way."""
    if _is_aws(head):
        base = aws_error_response(head, error)
    elif head.method != "CONNECT" and google_api(head.target) is not None:
        base = google_error_response(head, error)
    elif head.method != "CONNECT" and is_kubernetes_api(head.target):
        base = kubernetes_error_response(head, error)
    elif head.method != "CONNECT" and azure_blob_account(head.target) is not None:
        base = azure_error_response(head, error)
    else:
        base = alien_error_response(head, error)
    return marked(base, error.code)


class SessionUpstream:
    """Routes one session's requests: AWS (origin form), Google APIs (absolute form to
    ``<api>.googleapis.com``, when offered), the cluster's API (absolute form to
    ``kubernetes.default.svc``, when offered), Azure blobs (absolute form to
    ``<account>.blob.core.windows.net``, when offered), HTTP egress (absolute form), CONNECT. A
    channel the configuration does not offer is refused."""

    def __init__(
        self, config: DebugConfig, session_id: str, *, resolve: Resolver = system_resolver
    ) -> None:
        """``resolve``: how egress destinations' names are resolved (then screened)."""
        self.config = config
        self.credentials = _credentials(config.aws, session_id) if config.aws else None
        policy = aws_policy(config.aws) if config.aws else None
        self._aws = (
            AwsResigningUpstream(policy, self.credentials)
            if policy is not None and self.credentials is not None
            else None
        )
        allow = HostAllowlist(config.http.allow) if config.http else None
        self._allow = allow
        self._http = (
            ForwardingUpstream(config.http.allow, scheme="http", resolve=resolve)
            if config.http
            else None
        )
        self._connect = ConnectUpstream(allow, resolve) if allow is not None else None
        self._google = _google_apis(config.gcp) if config.gcp else None
        self._kubernetes = _kubernetes_api(config.kubernetes) if config.kubernetes else None
        self._azure = _azure_blobs(config.azure) if config.azure else None
        self._starting: asyncio.Task[None] | None = None

    def begin(self) -> None:
        """Get the first AWS credentials now, in the background, so the first request does not
        wait for STS (a failure is logged; requests then try again and report it)."""
        if isinstance(self.credentials, AssumeRoleCredentialProvider):
            self._starting = asyncio.create_task(self._start(self.credentials))

    @staticmethod
    async def _start(credentials: AssumeRoleCredentialProvider) -> None:
        try:
            await credentials.start()
        except AlienError as exc:
            log.warning("AWS credentials for debugging are not available: %s", exc.message)

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        if head.method == "CONNECT":
            if self._connect is None:
                raise Forbidden("this agent offers no HTTP egress", field="http")
            return await self._connect.send(head, body)
        if head.target.startswith(("http://", "https://")):
            if self._google is not None and google_api(head.target) is not None:
                return await self._google.send(head, body)
            if self._kubernetes is not None and is_kubernetes_api(head.target):
                return await self._kubernetes.send(head, body)
            if self._azure is not None and azure_blob_account(head.target) is not None:
                return await self._azure.send(head, body)
            if self._http is None or self._allow is None:
                raise Forbidden("this agent offers no HTTP egress", field="http")
            url = absolute_url(head.target)
            if not self._allow.allows(url.scheme, url.raw_host.decode("ascii"), url.port):
                raise _not_allowed(f"{url.scheme}://{url.netloc.decode()}")
            return await self._http.send(head, body)
        if self._aws is None:
            raise Forbidden(
                "this agent offers no AWS access", field="aws", details={"aws_code": "AccessDenied"}
            )
        request = await self._aws.admit(head, body)  # a refusal raises: it gets marked
        return await self._aws.forward(request)

    async def aclose(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        parts = (self._aws, self._http, self._google, self._kubernetes, self._azure)
        for part in (*parts, self.credentials):
            if part is not None:
                await part.aclose()


async def handle_stream(upstream: SessionUpstream, stream: TunnelStream) -> None:
    """Answer one stream the manager relayed."""
    if stream.meta.get("kind") == DEBUG_INFO_KIND:
        await stream.send(upstream.config.offer.to_json())
        await stream.end()
        return
    await serve_http_stream(stream, upstream, error_response=error_response)


async def _ready(config: DebugConfig, session_id: str) -> SessionUpstream:
    upstream = await asyncio.to_thread(SessionUpstream, config, session_id)
    upstream.begin()
    return upstream


async def _release(preparing: asyncio.Task[SessionUpstream]) -> None:
    """Close the session's upstream once it is made; stop making it if it is not yet."""
    preparing.cancel()
    try:
        upstream = await preparing
    except (asyncio.CancelledError, Exception):
        return  # not made (its failure was reported where it was awaited)
    await upstream.aclose()


class DebugTunnels:
    """The agent's debug tunnels: one task per ``tunnel_open``, all ended by :meth:`aclose`."""

    def __init__(self, base_url: str, token: str, state_root: Path) -> None:
        self._base_url = base_url
        self._token = token
        self._config_file = config_path(state_root)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def capabilities(self) -> tuple[str, ...]:
        """``debug_tunnels`` (with ``debug_tunnel_splice``: this agent can be the server of a
        spliced tunnel; ``debug_limits``: it narrows a session to the deployment's policy) when
        the customer configured debugging here (``debug.json``)."""
        if not self._config_file.is_file():
            return ()
        return (CAPABILITY_DEBUG_TUNNELS, CAPABILITY_DEBUG_SPLICE, CAPABILITY_DEBUG_LIMITS)

    def prepare(self) -> None:
        """With AWS debugging configured here, load boto3's data now, in a thread of its own
        (:mod:`alien.platforms.aws.preload`): the first session's set-up would wait for it."""
        if self._config_file.is_file():
            preload.prepare_in_background(self._configures_aws)

    def _configures_aws(self) -> bool:
        try:
            return load_config(self._config_file).aws is not None
        except AlienError as exc:  # said now, and again to every session it refuses
            where = f" ({exc.field})" if exc.field else ""
            log.warning(
                "%s is wrong, so debug sessions will fail until it is fixed: %s%s"
                " (check it with alien-deploy debug)",
                self._config_file,
                exc.message,
                where,
            )
            return False

    def on_message(self, message: ManagerMessage) -> None:
        """A ``ManagerLink.on_other_message`` hook: serve each ``tunnel_open``."""
        if not isinstance(message, TunnelOpen):
            return
        task = asyncio.create_task(self.serve(message), name=f"debug-{message.session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def serve(self, message: TunnelOpen) -> None:
        """Dial the session's tunnel and answer its streams until it closes (never raises).

        The customer's configuration is read first (one that cannot be read is not served: the
        manager tells the CLI its agent did not open the tunnel). The session's upstream (STS
        client, first credentials) is then made while the tunnel is dialled, not before: the
        CLI's handshake waits for this dial, and an ``AssumeRole`` is a round trip to STS. A
        stream that comes first waits for the upstream; a request, for its credentials."""
        session_id = message.session_id
        preparing: asyncio.Task[SessionUpstream] | None = None
        connection: TunnelConnection | None = None
        try:
            # In threads: reading the file and creating boto3 clients block.
            config = await asyncio.to_thread(load_config, self._config_file)
            config = narrowed(config, message.limits)
            preparing = asyncio.create_task(_ready(config, session_id))
            connection = await self._dial(message, preparing)
            await asyncio.shield(preparing)  # an upstream that cannot be made ends the tunnel
            log.info("debug tunnel of %s opened", session_id)
            await self._hold(connection, message.expires_at)
        except AlienError as exc:
            log.warning("debug tunnel of %s failed: %s", session_id, exc.message)
        except Exception:
            log.exception("debug tunnel of %s failed", session_id)
        finally:
            if connection is not None and not connection.closed:
                await connection.abort("the agent stopped serving this debug session")
            if preparing is not None:
                await _release(preparing)
        log.info("debug tunnel of %s closed", session_id)

    async def _dial(
        self, message: TunnelOpen, upstream: asyncio.Task[SessionUpstream]
    ) -> TunnelConnection:
        headers = {"Authorization": f"Bearer {self._token}", CREDENTIAL_HEADER: message.credential}
        leg: MessageTransport
        try:
            if message.leg == "http":  # this agent long-polls: its leg is made of requests too
                leg = await HttpLegClient.open(
                    self._base_url, message.tunnel_path, headers, timeout=DIAL_TIMEOUT
                )
            else:
                url = websocket_url(self._base_url, message.tunnel_path)
                leg = await dial(url, headers, timeout=DIAL_TIMEOUT)
        except (HandshakeRefused, LegRefused) as exc:
            raise PlatformError(
                f"the manager refused the debug tunnel (HTTP {exc.status})", field="manager"
            ) from None
        except (OSError, TimeoutError, HandshakeFailed, httpx.HTTPError) as exc:
            raise PlatformError(
                f"could not dial the debug tunnel: {exc or type(exc).__name__}", field="manager"
            ) from None

        async def handle(stream: TunnelStream) -> None:
            await handle_stream(await asyncio.shield(upstream), stream)

        # Spliced, the manager passes the CLI's frames through: the CLI (the tunnel's client)
        # opens the streams, so this end is the server. Otherwise the manager opens them.
        role = "server" if message.splice else "client"
        connection = TunnelConnection(leg, role, handler=handle, settings=WIDE_WINDOWS)
        return await connection.start()

    @staticmethod
    async def _hold(connection: TunnelConnection, expires_at: datetime) -> None:
        """Until the manager closes the tunnel, or shortly after the session's expiry."""
        remaining = (expires_at - datetime.now(UTC)).total_seconds() + EXPIRY_SLACK
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                await connection.wait_closed()
        except TimeoutError:
            log.warning("the manager kept an expired debug tunnel open: closing it")
        finally:
            if not connection.closed:
                await connection.abort("the agent stopped serving this tunnel", ErrorCode.CANCEL)

    async def aclose(self) -> None:
        """End every tunnel (the agent is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
