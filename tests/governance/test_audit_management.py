"""Who may onboard where is in the trail: groups made, renamed and deleted, their onboarding
tokens issued and revoked, each onboarding (the first record of a deployment's own chain), and
the groups an API key is confined to."""

from __future__ import annotations

from typing import Any

from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique


def _trail(admin: ApiClient, **params: str) -> list[dict[str, Any]]:
    answer = admin.get("/v1/audit", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]


def test_groups_their_tokens_and_onboardings_are_audited(manager: ManagerProcess) -> None:
    with manager.client() as admin:
        name, other = unique("grp"), unique("grp")
        group_id = admin.create_group(name)["id"]
        token = admin.create_group_token(name)
        dep = admin.onboard(token, "acme")["deployment"]
        [issued] = admin.get(f"/v1/groups/{name}/tokens").json()["items"]
        assert admin.delete(f"/v1/groups/{name}/tokens/{issued['id']}").status_code == 200
        assert admin.request("PATCH", f"/v1/groups/{name}", json={"name": other}).is_success
        spare = admin.create_group(unique("grp"))
        assert admin.delete(f"/v1/groups/{spare['id']}").status_code == 204
        key = admin.post(
            "/v1/api-keys", json={"name": "ops", "role": "operator", "groups": [other]}
        )
        assert key.status_code == 201, key.text

        groups = [
            (r["action"], r["target"], r["details"]["group_id"])
            for r in _trail(admin, action="group.")
        ]
        assert groups == [
            ("group.create", group_id, group_id),
            ("group.token.create", issued["id"], group_id),
            ("group.token.revoke", issued["id"], group_id),
            ("group.update", group_id, group_id),
            ("group.create", spare["id"], spare["id"]),
            ("group.delete", spare["id"], spare["id"]),
        ]
        [first, *_] = _trail(admin, deployment=dep["id"])
        assert first["action"] == "deployment.onboard" and first["actor"]["kind"] == "group_token"
        [created] = _trail(admin, action="key.create", target=key.json()["id"])
        assert created["details"]["groups"] == [other]
