"""``CommandsClient``: invoke remote commands from Python, synchronously or with asyncio.

::

    from alien.commands import CommandsClient

    client = CommandsClient(deployment="acme/prod", token="ax_key_…", manager="https://…")
    report = client.invoke("generate-report", {"start_date": "2025-01-01"})
    report = await client.invoke_async("generate-report", {"start_date": "2025-01-01"})
    results = client.fan_out("rotate-keys", group="prod", max_concurrency=8, max_errors=2)

``invoke`` returns the handler's result or raises :class:`~alien.commands.CommandFailed` (its
``code`` says why: ``HANDLER_ERROR``, ``COMMAND_EXPIRED``, …); a refusal by the manager raises
the matching ``AlienError`` (``TARGET_REQUIRED``, ``UNKNOWN_COMMAND``, ``NOT_FOUND``, …). The
manager and token come from the arguments, else ``ALIEN_MANAGER_URL`` and ``ALIEN_TOKEN`` /
``ALIEN_API_KEY``. Every method has an ``…_async`` twin; both run the same flows
(:mod:`alien.commands.flows`), only the transport differs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from alien.client.call import path_segment
from alien.client.config import ClientConfig
from alien.client.errors import ManagerUnreachable, unreachable
from alien.client.transport import headers as default_headers
from alien.commands import fanout
from alien.commands.flows import (
    RETRY_PAUSE,
    Flow,
    Request,
    checked,
    create_flow,
    invoke_flow,
    result_flow,
    run_flow,
    wait_flow,
)
from alien.commands.models import Command, FanOutResult
from alien.commands.sync_http import SyncHttp, TransportError, proxied
from alien.errors import AlienError, ValidationError

DEFAULT_TIMEOUT = 300.0
"""A command's deadline, in seconds from its creation, unless the call says otherwise."""


class CommandsClient:
    def __init__(
        self,
        deployment: str | None = None,
        token: str | None = None,
        manager: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        http_timeout: float = 30.0,
    ) -> None:
        """``deployment``: the default target (id, ``group/name`` or a unique name);
        ``timeout``: the default deadline of a command, in seconds."""
        self.config = ClientConfig.resolve(manager, token, timeout=http_timeout)
        self.config.require_token()
        self.deployment = deployment
        self.timeout = timeout
        self._http: SyncHttp | httpx.Client | None = None
        self._ahttp: httpx.AsyncClient | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"CommandsClient({self.config.base_url!r}, deployment={self.deployment!r})"

    # --- invoking --------------------------------------------------------------------------

    def invoke(
        self,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        deployment: str | None = None,
        target: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Run ``command`` and return its result (waits until it ended, ``timeout`` at most)."""
        request = self._request(command, params, deployment, target, timeout, idempotency_key)
        return self._run(invoke_flow(**request))

    async def invoke_async(
        self,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        deployment: str | None = None,
        target: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """:meth:`invoke` for asyncio."""
        request = self._request(command, params, deployment, target, timeout, idempotency_key)
        return await self._arun(invoke_flow(**request))

    def run(
        self,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        deployment: str | None = None,
        target: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Command:
        """Run ``command`` and return it once it ended, whatever the outcome (``result`` gives
        its result or raises)."""
        request = self._request(command, params, deployment, target, timeout, idempotency_key)
        return self._run(run_flow(**request))

    async def run_async(
        self,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        deployment: str | None = None,
        target: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Command:
        request = self._request(command, params, deployment, target, timeout, idempotency_key)
        return await self._arun(run_flow(**request))

    def submit(
        self,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        deployment: str | None = None,
        target: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Command:
        """Create ``command`` and return at once (``wait``/``result`` it later)."""
        request = self._request(command, params, deployment, target, timeout, idempotency_key)
        return self._run(create_flow(**request, wait=0.0))

    async def submit_async(
        self,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        deployment: str | None = None,
        target: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Command:
        request = self._request(command, params, deployment, target, timeout, idempotency_key)
        return await self._arun(create_flow(**request, wait=0.0))

    def _request(
        self,
        command: str,
        params: Mapping[str, Any] | None,
        deployment: str | None,
        target: str | None,
        timeout: float | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        """The arguments of a create, with this client's defaults filled in."""
        return {
            "deployment": self._deployment(deployment),
            "command": command,
            "params": params,
            "target": target,
            "timeout": self._timeout(timeout),
            "idempotency_key": idempotency_key,
        }

    # --- one command -----------------------------------------------------------------------

    def get(self, command_id: str) -> Command:
        return self._run(_get_flow(command_id))

    async def get_async(self, command_id: str) -> Command:
        return await self._arun(_get_flow(command_id))

    def wait(self, command_id: str, timeout: float | None = None) -> Command:
        """The command once it ended, or as it is after ``timeout`` seconds."""
        return self._run(self._wait(command_id, timeout))

    async def wait_async(self, command_id: str, timeout: float | None = None) -> Command:
        return await self._arun(self._wait(command_id, timeout))

    def _wait(self, command_id: str, timeout: float | None) -> Flow:
        command = yield from _get_flow(command_id)
        return (yield from wait_flow(command, time.monotonic() + self._timeout(timeout)))

    def result(self, command: Command) -> Any:
        """An ended command's result (fetched if large); raises ``CommandFailed`` otherwise."""
        return self._run(result_flow(command))

    async def result_async(self, command: Command) -> Any:
        return await self._arun(result_flow(command))

    def cancel(self, command_id: str, reason: str | None = None) -> Command:
        return self._run(_cancel_flow(command_id, reason))

    async def cancel_async(self, command_id: str, reason: str | None = None) -> Command:
        return await self._arun(_cancel_flow(command_id, reason))

    def list(
        self,
        *,
        deployment: str | None = None,
        group: str | None = None,
        state: list[str] | None = None,
        command: str | None = None,
        limit: int = 50,
    ) -> list[Command]:
        """Commands, newest first (without params and results)."""
        return self._run(_list_flow(deployment, group, state, command, limit))

    # --- fan-out ---------------------------------------------------------------------------

    def fan_out(
        self,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        group: str,
        max_concurrency: int = 8,
        max_errors: int | None = None,
        target: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, FanOutResult]:
        """Invoke ``command`` on every deployment of ``group`` (see :mod:`.fanout`)."""
        fanout.check_limits(max_concurrency, max_errors)
        refs: list[str] = self._run(fanout.group_deployments_flow(group))
        budget = fanout.ErrorBudget(max_errors)

        def one(ref: str) -> FanOutResult:
            if budget.exhausted:
                return budget.skipped(ref)
            try:
                request = self._request(command, params, ref, target, timeout, None)
                return self._run(fanout.one_flow(**request))
            except AlienError as exc:
                return budget.record(fanout.failed(ref, exc))

        with ThreadPoolExecutor(max_workers=max_concurrency) as pool:
            return dict(zip(refs, pool.map(one, refs), strict=True))

    async def fan_out_async(
        self,
        command: str,
        params: Mapping[str, Any] | None = None,
        *,
        group: str,
        max_concurrency: int = 8,
        max_errors: int | None = None,
        target: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, FanOutResult]:
        """:meth:`fan_out` for asyncio."""
        fanout.check_limits(max_concurrency, max_errors)
        refs: list[str] = await self._arun(fanout.group_deployments_flow(group))
        budget = fanout.ErrorBudget(max_errors)
        slots = asyncio.Semaphore(max_concurrency)

        async def one(ref: str) -> FanOutResult:
            async with slots:
                if budget.exhausted:
                    return budget.skipped(ref)
                try:
                    request = self._request(command, params, ref, target, timeout, None)
                    return await self._arun(fanout.one_flow(**request))
                except AlienError as exc:
                    return budget.record(fanout.failed(ref, exc))

        results = await asyncio.gather(*(one(ref) for ref in refs))
        return dict(zip(refs, results, strict=True))

    # --- transport -------------------------------------------------------------------------

    def _deployment(self, deployment: str | None) -> str:
        ref = deployment or self.deployment
        if not ref:
            raise ValidationError("name the deployment to run the command on", field="deployment")
        return ref

    def _timeout(self, timeout: float | None) -> float:
        value = self.timeout if timeout is None else timeout
        if not value > 0:
            raise ValidationError("timeout must be a positive number of seconds", field="timeout")
        return value

    def _headers(self, request: Request) -> dict[str, str]:
        out = {**request.headers}
        if request.authenticated:
            out["Authorization"] = f"Bearer {self.config.token}"
        return out

    def _request_args(self, request: Request) -> dict[str, Any]:
        args: dict[str, Any] = {"method": request.method, "url": request.url}
        args["headers"] = self._headers(request)
        if request.params is not None:
            args["params"] = request.params
        if request.json is not None:
            args["json"] = request.json
        if request.content is not None:
            args["content"] = request.content
        if request.timeout is not None:
            args["timeout"] = httpx.Timeout(self.config.timeout, read=request.timeout)
        return args

    def _run(self, flow: Flow) -> Any:
        try:
            request = next(flow)
            while True:
                request = flow.send(self._send_retrying(request))
        except StopIteration as stop:
            return stop.value

    def _send_retrying(self, request: Request) -> Any:
        while True:
            try:
                return self._send(request)
            except ManagerUnreachable as exc:
                if not _retry(request, exc):
                    raise _lost(request, exc) from None
            time.sleep(RETRY_PAUSE)

    def _send(self, request: Request) -> Any:
        """One request of a flow, synchronously: over :mod:`alien.commands.sync_http`, or over
        httpx when the environment sends the manager's traffic through a proxy."""
        if self._http is None:
            base_headers = default_headers(self.config, token="")
            if proxied(self.config.base_url):
                self._http = httpx.Client(
                    base_url=self.config.base_url,
                    headers=base_headers,
                    timeout=self.config.timeout,
                )
            else:
                self._http = SyncHttp(self.config.base_url, base_headers, self.config.timeout)
        if isinstance(self._http, httpx.Client):
            try:
                return self._http.request(**self._request_args(request))
            except httpx.HTTPError as exc:
                raise unreachable(self.config.base_url, exc) from None
        try:
            return self._http.request(
                request.method,
                request.url,
                params=request.params,
                json_body=request.json,
                content=request.content,
                headers=self._headers(request),
                timeout=request.timeout,
            )
        except TransportError as exc:
            raise unreachable(self.config.base_url, exc) from None

    async def _arun(self, flow: Flow) -> Any:
        http = self._async_http()
        try:
            request = next(flow)
            while True:
                try:
                    response = await http.request(**self._request_args(request))
                except httpx.HTTPError as exc:
                    lost = unreachable(self.config.base_url, exc)
                    if not _retry(request, lost):
                        raise _lost(request, lost) from None
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
                request = flow.send(response)
        except StopIteration as stop:
            return stop.value

    def _async_http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._ahttp is None or self._aloop is not loop:
            # An AsyncClient belongs to one event loop; a new loop (asyncio.run again) gets its own.
            self._ahttp = httpx.AsyncClient(
                base_url=self.config.base_url,
                headers=default_headers(self.config, token=""),
                timeout=self.config.timeout,
            )
            self._aloop = loop
        return self._ahttp

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    async def aclose(self) -> None:
        if self._ahttp is not None:
            await self._ahttp.aclose()
            self._ahttp = None
        self.close()

    def __enter__(self) -> CommandsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> CommandsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _command_path(command_id: str, suffix: str = "") -> str:
    return f"/v1/commands/{path_segment(command_id, 'command')}{suffix}"


def _get_flow(command_id: str) -> Flow:
    response = yield Request("GET", _command_path(command_id))
    return Command.model_validate(checked(response).json())


def _cancel_flow(command_id: str, reason: str | None) -> Flow:
    body = {"reason": reason} if reason else None
    response = yield Request("POST", _command_path(command_id, "/cancel"), json=body)
    return Command.model_validate(checked(response).json())


def _list_flow(
    deployment: str | None,
    group: str | None,
    state: list[str] | None,
    command: str | None,
    limit: int,
) -> Flow:
    params: dict[str, Any] = {"limit": limit}
    for key, value in (("deployment", deployment), ("group", group), ("command", command)):
        if value is not None:
            params[key] = value
    if state:
        params["state"] = state
    response = yield Request("GET", "/v1/commands", params=params)
    return [Command.model_validate(item) for item in checked(response).json()["items"]]


__all__ = ["DEFAULT_TIMEOUT", "CommandsClient"]


def _retry(request: Request, exc: ManagerUnreachable) -> bool:
    """Whether ``request`` may be sent again after ``exc`` (a wait, before its deadline)."""
    until = request.retry_until
    return until is not None and time.monotonic() + RETRY_PAUSE < until


def _lost(request: Request, exc: ManagerUnreachable) -> ManagerUnreachable:
    if request.when_lost is None:
        return exc
    return ManagerUnreachable(
        f"{exc.message}; {request.when_lost}", field=exc.field, details=exc.details
    )
