"""The local endpoints a debugged command talks to, and the environment that points it there.

Push model (the manager re-signs): one loopback AWS endpoint. Pull model (the deployment's agent
answers from inside the environment): what the agent offers decides — it is asked first, over the
session's tunnel (a ``debug_info`` stream) —

* AWS: the same loopback AWS endpoint; requests travel on to the agent, which re-signs them with
  its own identity;
* Google APIs: a loopback endpoint for ``gcloud`` (:mod:`alien.debug.gcp_endpoint`), whose calls
  the agent sends with its own access token to the APIs the customer allows;
* Kubernetes: an HTTPS loopback endpoint for ``kubectl`` (:mod:`alien.debug.kube_endpoint`),
  whose calls the agent sends to its cluster's API server with its service account;
* Azure blobs: a loopback blob endpoint for ``az storage`` (:mod:`alien.debug.azure_endpoint`),
  whose calls the agent signs with the storage account's key;
* HTTP egress: a forward proxy (``HTTP_PROXY``/``HTTPS_PROXY``, CONNECT for https) whose
  requests the agent forwards within the customer's allowlist. Loopback addresses then mean the
  agent's machine, so only the session's own endpoints are exempt from the proxy.

Every endpoint accepts only the session's secrets (SigV4 with the dummy keys; Shared Key with
the dummy account key; the bearer token as gcloud's access token or as proxy credentials) and
sends through :class:`~alien.debug.session.SessionUpstream`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from alien.debug.env import (
    DEFAULT_GCLOUD_APIS,
    ChildEnv,
    aws_env,
    azure_storage_env,
    gcloud_env,
    http_proxy_env,
    kubectl_env,
)
from alien.debug.proxy import LoopbackProxy
from alien.debug.session import DebugSession
from alien.debug.session_calls import PushTarget
from alien.debug.session_dir import SessionDir
from alien.debug.session_keys import SessionKeys
from alien.errors import Conflict, ValidationError
from alien.platforms.aws.error_shape import aws_error_response
from alien.platforms.aws.proxy_auth import SigV4SessionAuthenticator
from alien.protocol.debug_offer import DEBUG_INFO_KIND, MAX_OFFER_BYTES, DebugOffer, parse_offer
from alien.tunnel import TunnelConnection
from alien.tunnel.errors import TunnelMessageError


@dataclass(frozen=True)
class Endpoints:
    """What the child gets: environment changes, the AWS endpoint (for ``aws --endpoint-url``,
    ``None`` without AWS) and one line saying what is reachable."""

    env: ChildEnv
    aws_url: str | None
    summary: str


async def _aws_endpoint(
    stack: contextlib.AsyncExitStack, session: DebugSession, files: SessionDir, keys: SessionKeys
) -> LoopbackProxy:
    authenticator = SigV4SessionAuthenticator(
        keys.aws_access_key_id, keys.aws_secret_access_key, spool_dir=files.path
    )
    proxy = LoopbackProxy(session.upstream, authenticator, error_response=aws_error_response)
    return await stack.enter_async_context(proxy)


async def push_endpoints(
    stack: contextlib.AsyncExitStack,
    session: DebugSession,
    files: SessionDir,
    keys: SessionKeys,
    aws: PushTarget,
) -> Endpoints:
    """The loopback AWS endpoint of a push-model session (the manager re-signs)."""
    proxy = await _aws_endpoint(stack, session, files, keys)
    env = aws_env(files, endpoint_url=proxy.url, region=aws.region, keys=keys)
    summary = f"AWS {aws.region} ({', '.join(aws.allowed_services)}) via {proxy.url}"
    return Endpoints(env, proxy.url, summary)


async def agent_offer(connection: TunnelConnection) -> DebugOffer:
    """Ask the deployment's agent, through the tunnel, what this session may reach."""
    stream = await connection.open_stream({"kind": DEBUG_INFO_KIND})
    async with stream:
        await stream.end()
        data = bytearray()
        async for chunk in stream:
            data += chunk
            if len(data) > MAX_OFFER_BYTES:
                raise TunnelMessageError("the agent's offer is too large", field="offer")
    try:
        return parse_offer(bytes(data))
    except ValidationError as exc:
        raise TunnelMessageError(f"the agent's offer is malformed: {exc}", field="offer") from None


async def pull_endpoints(
    stack: contextlib.AsyncExitStack, session: DebugSession, files: SessionDir, keys: SessionKeys
) -> Endpoints:
    """The endpoints of a pull-model session, for what the deployment's agent offers."""
    assert session.connection is not None
    offer = await agent_offer(session.connection)
    if offer.empty:
        raise Conflict(
            f"the agent of {session.info.deployment} offers nothing to debug with "
            "(its debug.json configures none of aws, gcp, kubernetes, azure, http)",
            field="deployment",
            code="DEBUG_UNAVAILABLE",
        )
    env, parts, own = ChildEnv(), [], []
    aws_url = None
    if offer.aws is not None:
        proxy = await _aws_endpoint(stack, session, files, keys)
        aws_url, own = proxy.url, [proxy.authority]
        env |= aws_env(
            files, endpoint_url=proxy.url, region=offer.aws.region, keys=keys, no_proxy=own
        )
        parts.append(f"AWS {offer.aws.region} ({', '.join(offer.aws.services)}) via {proxy.url}")
    if offer.gcp is not None:
        from alien.debug.gcp_endpoint import google_api_endpoint  # for gcloud sessions alone

        google = await google_api_endpoint(stack, session.upstream, keys.bearer_token)
        address = google.authority
        own = [*own, address]
        env |= gcloud_env(
            files,
            endpoint_url=google.url,
            project=offer.gcp.project,
            keys=keys,
            apis=sorted({*DEFAULT_GCLOUD_APIS, *offer.gcp.apis}),
            no_proxy=(address,),
        )
        parts.append(
            f"GCP project {offer.gcp.project} ({', '.join(offer.gcp.apis)}) via {google.url}"
        )
    if offer.kubernetes is not None:
        from alien.debug.kube_endpoint import kubernetes_endpoint  # for kubectl sessions alone

        cluster, ca_pem = await kubernetes_endpoint(
            stack, session.upstream, files, keys.bearer_token
        )
        address = cluster.authority
        own = [*own, address]
        env |= kubectl_env(
            files,
            server_url=cluster.url,
            ca_pem=ca_pem,
            keys=keys,
            namespace=offer.kubernetes.namespace,
            no_proxy=(address,),
        )
        parts.append(f"Kubernetes (namespace {offer.kubernetes.namespace}) via {cluster.url}")
    if offer.azure is not None:
        from alien.debug.azure_endpoint import azure_blob_endpoint  # for az sessions alone

        account = offer.azure.account
        blobs = await azure_blob_endpoint(stack, session.upstream, account, keys.azure_storage_key)
        address = blobs.authority
        own = [*own, address]
        env |= azure_storage_env(
            files, endpoint_url=blobs.url, account=account, keys=keys, no_proxy=(address,)
        )
        parts.append(f"Azure storage account {account} (blobs) via {blobs.url}")
    if offer.http is not None:
        from alien.debug.forward_proxy import ForwardProxy  # the pull model's alone

        forward = await stack.enter_async_context(ForwardProxy(session.upstream, keys.bearer_token))
        env |= http_proxy_env(
            proxy_host=forward.host, proxy_port=forward.port, keys=keys, bypass=own
        )
        parts.append(f"HTTP(S) to {', '.join(offer.http.allow)} via proxy {forward.url}")
    return Endpoints(env, aws_url, "; ".join(parts) + " (through the deployment's agent)")
