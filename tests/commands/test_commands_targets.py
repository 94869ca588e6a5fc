"""Which function runs a command, refusals at create time, and listing — real manager."""

from __future__ import annotations

from agent_double import KNOWN_COMMANDS, Deployment, create_command, running_deployment

from support.api import ApiClient
from support.names import unique


def _error(response: object) -> dict[str, object]:
    return response.json()["error"]  # type: ignore[attr-defined, no-any-return]


def test_several_command_functions_need_a_target(admin: ApiClient) -> None:
    dep = running_deployment(admin, functions={"api": True, "worker": True, "web": False})
    required = create_command(admin, dep)
    assert required.status_code == 422
    assert _error(required)["code"] == "TARGET_REQUIRED"
    assert _error(required)["field"] == "target"
    assert _error(required)["details"] == {"targets": ["api", "worker"]}

    not_enabled = create_command(admin, dep, target="web")
    assert not_enabled.status_code == 422 and _error(not_enabled)["code"] == "TARGET_AMBIGUOUS"
    missing = create_command(admin, dep, target="nope")
    assert missing.status_code == 422 and _error(missing)["code"] == "TARGET_AMBIGUOUS"

    chosen = create_command(admin, dep, target="worker")
    assert chosen.status_code == 201 and chosen.json()["target"] == "worker"


def test_a_single_command_function_is_implied(admin: ApiClient) -> None:
    dep = running_deployment(admin, functions={"api": False, "jobs": True})
    created = create_command(admin, dep)
    assert created.status_code == 201 and created.json()["target"] == "jobs"


def test_nothing_to_run_commands_on(admin: ApiClient) -> None:
    dep = running_deployment(admin, functions={"api": False})
    refused = create_command(admin, dep)
    assert refused.status_code == 409 and _error(refused)["code"] == "NO_COMMAND_TARGET"
    group = admin.create_group(unique("grp"))["name"]
    fresh = admin.onboard(admin.create_group_token(group), unique("dep"))["deployment"]
    not_running = create_command(admin, fresh["id"])
    assert not_running.status_code == 409 and "runs no release" in _error(not_running)["message"]


def test_unknown_command_names_fail_fast_when_the_agent_listed_them(
    admin: ApiClient, deployment: Deployment
) -> None:
    refused = create_command(admin, deployment, "generate-reprot")
    assert refused.status_code == 422
    error = _error(refused)
    assert error["code"] == "UNKNOWN_COMMAND" and error["field"] == "command"
    assert error["details"] == {"known": sorted(KNOWN_COMMANDS["api"]), "target": "api"}
    assert "generate-report" in str(error["message"])
    unlisted = running_deployment(admin)  # its agent reported no names: nothing to check
    assert create_command(admin, unlisted, "anything").status_code == 201


def test_deployment_by_id_group_name_and_bare_name(
    admin: ApiClient, deployment: Deployment
) -> None:
    for ref in (deployment.id, deployment.ref, deployment.name):
        created = create_command(admin, ref)
        assert created.status_code == 201, created.text
        assert created.json()["deployment_id"] == deployment.id
    twin = running_deployment(admin)
    twin_name = admin.onboard(admin.create_group_token(twin.group), deployment.name)
    assert twin_name["deployment"]["name"] == deployment.name
    ambiguous = create_command(admin, deployment.name)
    assert ambiguous.status_code == 409 and _error(ambiguous)["code"] == "TARGET_AMBIGUOUS"
    unknown = create_command(admin, "nobody/nothing")
    assert unknown.status_code == 404 and _error(unknown)["field"] == "deployment"


def test_bad_requests_name_the_field(admin: ApiClient, deployment: Deployment) -> None:
    cases = [
        ({"command": "Bad Name"}, 422, "command"),
        ({"params": [1, 2]}, 422, "params"),
        ({"timeout": 10, "deadline": "2030-01-01T00:00:00Z"}, 422, None),
        ({"timeout": 30 * 24 * 3600}, 422, "timeout"),
        ({"deadline": "2000-01-01T00:00:00Z"}, 422, "deadline"),
        ({"params": {"blob": "x" * (300 * 1024)}}, 413, "params"),
        ({"params_ref": {"sha256": "0" * 64, "size": 3}}, 422, "params_ref.sha256"),
        ({"surprise": 1}, 422, "surprise"),
    ]
    for extra, status, field in cases:
        body = {"deployment": deployment.ref, "command": "echo", **extra}
        response = admin.post("/v1/commands", json=body)
        assert response.status_code == status, (extra, response.text)
        if field is not None:
            assert _error(response)["field"] == field, (extra, response.text)
    too_long = admin.post(
        "/v1/commands", params={"wait": 61}, json={"deployment": deployment.ref, "command": "echo"}
    )
    assert too_long.status_code == 422 and _error(too_long)["field"] == "wait"
    missing = admin.get("/v1/commands/cmd_0000000000000000000000000a")
    assert missing.status_code == 404 and _error(missing)["code"] == "COMMAND_NOT_FOUND"


def test_list_filters_and_pages(admin: ApiClient, deployment: Deployment) -> None:
    other = running_deployment(admin, commands=KNOWN_COMMANDS, group=deployment.group)
    mine = [create_command(admin, deployment, "echo").json()["id"] for _ in range(3)]
    create_command(admin, deployment, "noop")
    theirs = create_command(admin, other, "echo").json()["id"]
    expired = create_command(admin, deployment, "slow", timeout=0.2).json()["id"]
    admin.get(f"/v1/commands/{expired}", params={"wait": 5})

    def ids(**params: object) -> list[str]:
        response = admin.get("/v1/commands", params=params)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert ids(deployment=deployment.ref, command="echo") == mine[::-1]
    assert ids(deployment=deployment.ref, state="expired") == [expired]
    assert theirs in ids(group=deployment.group) and mine[0] in ids(group=deployment.group)
    assert ids(deployment=other.id) == [theirs]
    page = admin.get(
        "/v1/commands", params={"deployment": deployment.ref, "command": "echo", "limit": 2}
    ).json()
    assert [c["id"] for c in page["items"]] == mine[:0:-1] and page["next_before"] == mine[1]
    rest = ids(deployment=deployment.ref, command="echo", before=page["next_before"])
    assert rest == [mine[0]]
    listed = admin.get("/v1/commands", params={"deployment": deployment.ref}).json()["items"][0]
    assert "params" in listed and listed["params"] is None  # listings leave payloads out


def test_a_torn_down_deployment_is_said_to_be_gone(admin: ApiClient) -> None:
    dep = running_deployment(admin)
    with admin.with_token(dep.token) as agent:
        for event, said in (
            ("delete_requested", "is being torn down"),
            ("deleted", "was torn down"),
        ):
            body = {"v": 1, "type": "status", "event": {"type": event}}
            assert agent.post("/v1/agent/status", json=body).status_code == 200
            refused = create_command(admin, dep)
            assert refused.status_code == 409, refused.text
            assert _error(refused)["code"] == "NO_COMMAND_TARGET"
            assert _error(refused)["message"].endswith(said)
