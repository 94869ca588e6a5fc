"""Every API call the clients make, described once: method, path, body, and how to decode.

The sync client (CLIs) and the async client (agent) both execute these descriptions, so a route's
path, its parameters and the shape of its answer live in one place and the two clients cannot
drift apart. A ``Call`` (:mod:`alien.client.call`) is plain data; the clients only add the
transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from alien.client.call import LONG_POLL_SLACK, Call, decode_nothing, deployment_ref, path_segment
from alien.client.models import (
    AwsOnboarded,
    AwsOnboardingPlan,
    Blob,
    Deployment,
    Group,
    GroupToken,
    Onboarded,
    Release,
    WaitResult,
)
from alien.protocol.agent_channel import AgentPoll

M = TypeVar("M", bound=BaseModel)


def decode_model(model: type[M]) -> Callable[[Any], M]:
    """A decoder for a JSON object answered as ``model``."""
    return model.model_validate


def decode_page(model: type[M]) -> Callable[[Any], list[M]]:
    """A decoder for a ``{"items": [...]}`` page of ``model``."""
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return lambda data: adapter.validate_python(data["items"])


# Older names, kept for modules that imported them before they became public.
_model, _page, _ref = decode_model, decode_page, deployment_ref


# --- groups ----------------------------------------------------------------------------------


def create_group(name: str, description: str | None = None) -> Call[Group]:
    body: dict[str, Any] = {"name": name}
    if description is not None:
        body["description"] = description
    return Call("POST", "/v1/groups", decode_model(Group), json=body)


def list_groups() -> Call[list[Group]]:
    return Call("GET", "/v1/groups", decode_page(Group))


def list_group_tokens(group: str) -> Call[list[GroupToken]]:
    return Call("GET", f"/v1/groups/{path_segment(group, 'group')}/tokens", decode_page(GroupToken))


def revoke_group_token(group: str, token_id: str) -> Call[GroupToken]:
    path = f"/v1/groups/{path_segment(group, 'group')}/tokens/{path_segment(token_id, 'token')}"
    return Call("DELETE", path, decode_model(GroupToken))


def create_group_token(group: str, name: str = "default") -> Call[GroupToken]:
    return Call(
        "POST",
        f"/v1/groups/{path_segment(group, 'group')}/tokens",
        decode_model(GroupToken),
        json={"name": name},
    )


# --- deployments -----------------------------------------------------------------------------


def onboard(name: str, platform: str, metadata: Mapping[str, Any] | None = None) -> Call[Onboarded]:
    body = {"name": name, "platform": platform, "metadata": dict(metadata or {})}
    return Call("POST", "/v1/onboard", decode_model(Onboarded), json=body)


def aws_onboarding_plan(name: str, region: str, account: str) -> Call[AwsOnboardingPlan]:
    params = {"name": name, "region": region, "account": account}
    return Call("GET", "/v1/onboard/aws", decode_model(AwsOnboardingPlan), params=params)


def aws_onboard(
    name: str, region: str, role_arn: str, metadata: Mapping[str, Any] | None = None
) -> Call[AwsOnboarded]:
    body = {"name": name, "region": region, "role_arn": role_arn, "metadata": dict(metadata or {})}
    return Call("POST", "/v1/onboard/aws", decode_model(AwsOnboarded), json=body)


def list_deployments(group: str | None = None, state: str | None = None) -> Call[list[Deployment]]:
    params = {k: v for k, v in {"group": group, "state": state}.items() if v is not None}
    return Call("GET", "/v1/deployments", decode_page(Deployment), params=params)


def get_deployment(ref: str) -> Call[Deployment]:
    return Call("GET", f"/v1/deployments/{deployment_ref(ref)}", decode_model(Deployment))


def wait_deployment(
    ref: str, *, release: str | None = None, states: tuple[str, ...] = (), timeout: float
) -> Call[WaitResult]:
    params: dict[str, Any] = {"timeout": timeout}
    if release is not None:
        params["release"] = release
    if states:
        params["state"] = list(states)
    return Call(
        "GET",
        f"/v1/deployments/{deployment_ref(ref)}/wait",
        decode_model(WaitResult),
        params=params,
        timeout=timeout + LONG_POLL_SLACK,
    )


def delete_deployment(ref: str) -> Call[None]:
    return Call("DELETE", f"/v1/deployments/{deployment_ref(ref)}", decode_nothing)


# --- blobs and releases ----------------------------------------------------------------------


def stat_blob(digest: str) -> Call[Blob]:
    return Call("GET", f"/v1/blobs/{path_segment(digest, 'digest', safe=':')}", decode_model(Blob))


def create_release(
    manifest: Mapping[str, Any],
    package_digest: str,
    targets: Mapping[str, Any],
    description: str | None = None,
) -> Call[Release]:
    body: dict[str, Any] = {
        "manifest": dict(manifest),
        "package_digest": package_digest,
        "targets": dict(targets),
    }
    if description is not None:
        body["description"] = description
    return Call("POST", "/v1/releases", decode_model(Release), json=body)


def get_release(release_id: str) -> Call[Release]:
    return Call("GET", f"/v1/releases/{path_segment(release_id, 'release')}", decode_model(Release))


# --- the agent channel over HTTP (the long-poll fallback) ------------------------------------


def agent_message(message: Mapping[str, Any]) -> Call[AgentPoll]:
    """``POST /v1/agent/status``: one agent message; the reply carries ``welcome`` for ``hello``."""
    return Call("POST", "/v1/agent/status", decode_model(AgentPoll), json=dict(message))


def agent_next(
    wait: float, known: str | None, capabilities: tuple[str, ...] = ()
) -> Call[AgentPoll]:
    params: dict[str, Any] = {"wait": wait}
    if known is not None:
        params["known"] = known
    if capabilities:
        params["capabilities"] = ",".join(capabilities)
    return Call(
        "GET",
        "/v1/agent/next",
        decode_model(AgentPoll),
        params=params,
        timeout=wait + LONG_POLL_SLACK,
    )
