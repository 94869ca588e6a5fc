"""``POST /v1/commands`` answered by ``FastCreate`` in front of FastAPI and by the FastAPI route
give the same answers — real manager, raw HTTP.

The same request goes both ways: ``?wait=W`` is eligible for the fast path, while an extra
``&via=framework`` (a parameter FastAPI ignores) sends it through the route. Compared: status,
content type, the body's keys and every field that does not vary per command (ids and times
do), for a quick success, idempotent replays, unknown deployment and command, a ``wait`` over
the limit, params JSON cannot carry, unknown, missing and under-privileged tokens.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from agent_double import CommandAgent, Deployment, echo

from alien.manager.settings import DEFAULT_MAX_WAIT
from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique

UNKNOWN_TOKEN = "ax_key_0123456789abcdef_" + "x" * 43
STABLE = ("deployment_id", "command", "target", "state", "params", "result", "error")
STABLE += ("attempt", "max_attempts")


def post(
    manager: ManagerProcess,
    body: dict[str, Any],
    *,
    framework: bool,
    wait: float = 0,
    token: str | None = "admin",
) -> httpx.Response:
    token = manager.admin_key if token == "admin" else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params: dict[str, Any] = {"wait": wait} | ({"via": "framework"} if framework else {})
    return httpx.post(
        f"{manager.url}/v1/commands", json=body, params=params, headers=headers, timeout=30
    )


def both(manager: ManagerProcess, body: dict[str, Any], **kw: Any) -> list[httpx.Response]:
    """The fast path's answer, then the route's, for the same request."""
    return [post(manager, body, framework=framework, **kw) for framework in (False, True)]


def same(fast: httpx.Response, framework: httpx.Response) -> dict[str, Any]:
    """Assert both answers agree (errors wholly, commands but for ids and times); the first's
    body."""
    assert fast.status_code == framework.status_code, (fast.text, framework.text)
    assert fast.headers["content-type"] == framework.headers["content-type"]
    a, b = fast.json(), framework.json()
    if fast.status_code >= 400:
        assert a == b
    else:
        assert a.keys() == b.keys()
        assert {k: a.get(k) for k in STABLE} == {k: b.get(k) for k in STABLE}
    return a  # type: ignore[no-any-return]


def command(deployment: Deployment, name: str = "echo", **extra: Any) -> dict[str, Any]:
    return {"deployment": deployment.ref, "command": name, **extra}


def test_a_quick_command_succeeds_alike(
    commands_manager: ManagerProcess, deployment: Deployment, agent: CommandAgent
) -> None:
    agent.serve(echo)
    fast, framework = both(commands_manager, command(deployment, params={"n": 7}), wait=10)
    body = same(fast, framework)
    assert fast.status_code == 201 and fast.headers["content-type"] == "application/json"
    assert body["state"] == "succeeded" and body["deployment_id"] == deployment.id
    assert body["result"] == {"command": "echo", "params": {"n": 7}, "attempt": 1}
    assert fast.json()["id"] != framework.json()["id"]


@pytest.mark.parametrize("first", ["fast", "framework"])
def test_an_idempotent_replay_is_the_same_command_either_way(
    commands_manager: ManagerProcess, deployment: Deployment, first: str
) -> None:
    body = command(deployment, params={"x": 1}, idempotency_key=unique("key"))
    order = [first == "framework", first == "framework", first != "framework"]
    created, again, other_way = (post(commands_manager, body, framework=f) for f in order)
    assert [created.status_code, again.status_code, other_way.status_code] == [201, 200, 200]
    assert created.json()["id"] == again.json()["id"] == other_way.json()["id"]
    same(again, other_way)
    assert created.json() == again.json() == other_way.json()


def test_an_unknown_deployment_is_the_same_404(commands_manager: ManagerProcess) -> None:
    body = {"deployment": f"nowhere/{unique('dep')}", "command": "echo"}
    error = same(*both(commands_manager, body))["error"]
    assert error["code"] == "NOT_FOUND" and error["field"] == "deployment"


def test_an_unknown_command_is_the_same_error(
    commands_manager: ManagerProcess, deployment: Deployment
) -> None:
    fast, framework = both(commands_manager, command(deployment, "generate-reprot"))
    error = same(fast, framework)["error"]
    assert fast.status_code == 422 and error["code"] == "UNKNOWN_COMMAND"
    assert error["field"] == "command"


def both_raw(manager: ManagerProcess, body: dict[str, Any], **spliced: str) -> list[httpx.Response]:
    """:func:`both` for a body Python's json would not write as is: each ``"@name"`` string in
    it is replaced by the raw JSON ``spliced[name]`` (``NaN``, ``1e400``…)."""
    text = json.dumps(body)
    for name, raw in spliced.items():
        text = text.replace(f'"@{name}"', raw)
    headers = {
        "Authorization": f"Bearer {manager.admin_key}",
        "Content-Type": "application/json",
    }
    return [
        httpx.post(
            f"{manager.url}/v1/commands?wait=0{via}", content=text, headers=headers, timeout=30
        )
        for via in ("", "&via=framework")
    ]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_params_json_cannot_carry_are_the_same_422(
    commands_manager: ManagerProcess, deployment: Deployment, number: str
) -> None:
    """Python's json writes (and reads) ``NaN``: such params are refused, not passed on to an
    agent whose parser may not read them."""
    answers = both_raw(commands_manager, command(deployment, params={"x": [1, "@n"]}), n=number)
    error = same(*answers)["error"]
    assert answers[0].status_code == 422 and error["code"] == "VALIDATION_ERROR"
    assert error["field"] == "params"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", "604801"),
        ("timeout", "1e9"),
        ("timeout", "1e12"),  # past the last date: was a 500 (OverflowError)
        ("timeout", "1e20"),  # past what timedelta holds
        ("timeout", "1e400"),  # json reads it as an infinity
        ("timeout", "Infinity"),
        ("deadline", '"9999-12-31T23:59:59-23:59"'),  # past year 9999 in UTC
    ],
)
def test_a_run_over_the_maximum_is_the_same_422_however_long(
    commands_manager: ManagerProcess, deployment: Deployment, field: str, value: str
) -> None:
    answers = both_raw(commands_manager, command(deployment, **{field: "@v"}), v=value)
    error = same(*answers)["error"]
    assert answers[0].status_code == 422, answers[0].text
    assert error == {
        "code": "VALIDATION_ERROR",
        "message": "a command may run for at most 604800 seconds",
        "field": field,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", "NaN"), ("timeout", "1e-400"), ("max_attempts", "1" + "0" * 30)],
)
def test_other_out_of_range_numbers_are_the_same_422(
    commands_manager: ManagerProcess, deployment: Deployment, field: str, value: str
) -> None:
    answers = both_raw(commands_manager, command(deployment, **{field: "@v"}), v=value)
    error = same(*answers)["error"]
    assert answers[0].status_code == 422, answers[0].text
    assert error["code"] == "VALIDATION_ERROR" and error["field"] == field


def test_a_wait_over_the_limit_is_the_same_422(
    commands_manager: ManagerProcess, deployment: Deployment
) -> None:
    fast, framework = both(commands_manager, command(deployment), wait=DEFAULT_MAX_WAIT + 1)
    error = same(fast, framework)["error"]
    assert fast.status_code == 422 and error["code"] == "VALIDATION_ERROR"
    assert error["field"] == "wait"


@pytest.mark.parametrize("token", [UNKNOWN_TOKEN, None], ids=["unknown", "none"])
def test_an_unknown_or_missing_token_is_the_same_401(
    commands_manager: ManagerProcess, deployment: Deployment, token: str | None
) -> None:
    fast, framework = both(commands_manager, command(deployment), token=token)
    assert fast.status_code == 401
    assert same(fast, framework)["error"]["code"] == "UNAUTHENTICATED"


def test_a_viewer_is_refused_alike(
    commands_manager: ManagerProcess, admin: ApiClient, deployment: Deployment
) -> None:
    made = admin.post("/v1/api-keys", json={"name": unique("viewer"), "role": "viewer"})
    viewer = made.json()["key"]
    fast, framework = both(commands_manager, command(deployment), token=viewer)
    assert fast.status_code == 403
    assert same(fast, framework)["error"]["code"] == "FORBIDDEN"
    listed = admin.get("/v1/commands", params={"deployment": deployment.ref}).json()["items"]
    assert listed == []  # neither way created anything
