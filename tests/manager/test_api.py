"""The HTTP API against a real ``alien serve`` process: happy paths and their errors."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique
from support.payloads import digest_of, sample_manifest, sample_package


def _error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    if field is not None:
        assert body.get("field") == field, body
    assert body["message"]
    return body


def test_health_and_openapi(admin: ApiClient) -> None:
    health = admin.get("/v1/health").json()
    assert health["status"] == "ok"
    assert health["database"] in {"sqlite", "postgresql"}
    spec = admin.get("/openapi.json").json()
    assert "/v1/releases" in spec["paths"]
    assert "/v1/deployments/{ref}/wait" in spec["paths"]


def test_unknown_route_and_method_are_json(admin: ApiClient) -> None:
    _error(admin.get("/v1/nope"), 404, "NOT_FOUND")
    _error(admin.request("PUT", "/v1/health"), 405, "METHOD_NOT_ALLOWED")


def test_group_crud(admin: ApiClient) -> None:
    name = unique("grp")
    created = admin.create_group(name)
    assert created["id"].startswith("grp_") and created["deployment_count"] == 0
    _error(admin.post("/v1/groups", json={"name": name}), 409, "NAME_TAKEN", "name")
    assert admin.get(f"/v1/groups/{name}").json()["id"] == created["id"]
    assert admin.get(f"/v1/groups/{created['id']}").json()["name"] == name
    renamed = unique("grp")
    patched = admin.request(
        "PATCH", f"/v1/groups/{name}", json={"name": renamed, "description": "prod"}
    ).json()
    assert (patched["name"], patched["description"]) == (renamed, "prod")
    assert renamed in [g["name"] for g in admin.get("/v1/groups").json()["items"]]
    assert admin.delete(f"/v1/groups/{renamed}").status_code == 204
    _error(admin.get(f"/v1/groups/{renamed}"), 404, "NOT_FOUND", "group")


def test_group_with_deployments_cannot_be_deleted(admin: ApiClient) -> None:
    group = admin.create_group(unique("grp"))["name"]
    admin.onboard(admin.create_group_token(group), unique("dep"))
    _error(admin.delete(f"/v1/groups/{group}"), 409, "GROUP_NOT_EMPTY", "group")


def test_group_tokens_and_onboarding(admin: ApiClient) -> None:
    group = admin.create_group(unique("grp"))
    created = admin.post(f"/v1/groups/{group['name']}/tokens", json={"name": "ci"}).json()
    token = created["token"]
    assert token.startswith("ax_dg_")
    listed = admin.get(f"/v1/groups/{group['name']}/tokens").json()["items"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]

    name = unique("dep")
    onboarded = admin.onboard(token, name, platform="aws")
    dep = onboarded["deployment"]
    assert onboarded["token"].startswith("ax_dep_")
    assert dep["id"].startswith("dep_") and dep["group"] == group["name"]
    assert (dep["state"], dep["platform"], dep["connected"]) == ("pending", "aws", False)
    used = admin.get(f"/v1/groups/{group['name']}/tokens").json()["items"][0]
    assert used["use_count"] == 1 and used["last_used_at"] is not None

    # the same name twice in one group is refused
    again = admin.with_token(token).post("/v1/onboard", json={"name": name, "platform": "aws"})
    _error(again, 409, "NAME_TAKEN", "name")

    revoked = admin.delete(f"/v1/groups/{group['name']}/tokens/{created['id']}").json()
    assert revoked["revoked_at"] is not None
    late = admin.with_token(token).post("/v1/onboard", json={"name": "x", "platform": "aws"})
    _error(late, 401, "UNAUTHENTICATED")
    # deployments onboarded before the revocation keep working
    assert admin.with_token(onboarded["token"]).get(f"/v1/deployments/{dep['id']}").is_success


def test_deployment_addressing(admin: ApiClient) -> None:
    g1, g2 = admin.create_group(unique("grp"))["name"], admin.create_group(unique("grp"))["name"]
    shared, solo = unique("dep"), unique("dep")
    first = admin.onboard(admin.create_group_token(g1), shared)["deployment"]
    second = admin.onboard(admin.create_group_token(g2), shared)["deployment"]
    only = admin.onboard(admin.create_group_token(g2), solo)["deployment"]

    assert admin.deployment(first["id"])["id"] == first["id"]
    assert admin.deployment(f"{g1}/{shared}")["id"] == first["id"]
    assert admin.deployment(f"{g2}/{shared}")["id"] == second["id"]
    assert admin.deployment(solo)["id"] == only["id"]
    _error(admin.get(f"/v1/deployments/{shared}"), 409, "AMBIGUOUS_NAME", "deployment")
    _error(admin.get(f"/v1/deployments/{g1}/{solo}"), 404, "NOT_FOUND", "deployment")

    in_g2 = admin.get("/v1/deployments", params={"group": g2}).json()["items"]
    assert {d["id"] for d in in_g2} == {second["id"], only["id"]}
    pending = admin.get("/v1/deployments", params={"group": g2, "state": "pending"}).json()
    assert len(pending["items"]) == 2
    _error(
        admin.get("/v1/deployments", params={"state": "bogus"}), 422, "VALIDATION_ERROR", "state"
    )

    assert admin.delete(f"/v1/deployments/{g2}/{shared}").status_code == 204
    _error(admin.get(f"/v1/deployments/{second['id']}"), 404, "NOT_FOUND")
    assert admin.deployment(shared)["id"] == first["id"]  # no longer ambiguous


def test_deleted_deployment_token_stops_working(admin: ApiClient) -> None:
    group = admin.create_group(unique("grp"))["name"]
    onboarded = admin.onboard(admin.create_group_token(group), unique("dep"))
    dep_id = onboarded["deployment"]["id"]
    assert admin.delete(f"/v1/deployments/{dep_id}").status_code == 204
    agent = admin.with_token(onboarded["token"])
    _error(agent.get(f"/v1/deployments/{dep_id}"), 401, "UNAUTHENTICATED")


def test_blob_upload_is_content_addressed(admin: ApiClient) -> None:
    data = sample_package(unique("blob"))
    digest = digest_of(data)
    _error(admin.get(f"/v1/blobs/{digest}"), 404, "NOT_FOUND", "digest")
    first = admin.upload(data)
    assert first == {"digest": digest, "size": len(data)}
    assert admin.upload(data) == first
    assert admin.get(f"/v1/blobs/{digest}").json() == first
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    mismatch = admin.post("/v1/blobs", params={"digest": wrong}, content=data)
    _error(mismatch, 422, "DIGEST_MISMATCH", "digest")
    _error(admin.post("/v1/blobs", content=b""), 422, "VALIDATION_ERROR", "body")
    _error(admin.get("/v1/blobs/md5:abc"), 422, "VALIDATION_ERROR", "digest")


def test_release_to_a_group_sets_desired_release(admin: ApiClient) -> None:
    group = admin.create_group(unique("grp"))["name"]
    token = admin.create_group_token(group)
    deps = [admin.onboard(token, unique("dep"))["deployment"]["id"] for _ in range(2)]
    package = sample_package(unique("pkg"))
    release = admin.create_release({"type": "group", "group": group}, package=package)
    assert release["id"].startswith("rel_")
    assert release["stack_name"] == "my-app"
    assert release["manifest_digest"].startswith("sha256:")
    assert release["package_digest"] == digest_of(package)
    assert release["package_size"] == len(package)
    assert sorted(release["deployments"]) == sorted(deps)
    assert release["created_by"].startswith("key_")
    for dep_id in deps:
        assert admin.deployment(dep_id)["desired_release"] == release["id"]

    described = admin.get(f"/v1/releases/{release['id']}").json()
    assert described["manifest"] == sample_manifest()
    listed = admin.get("/v1/releases", params={"limit": 500}).json()["items"]
    assert release["id"] in [r["id"] for r in listed]
    assert "manifest" not in listed[0]

    download = admin.get(f"/v1/releases/{release['id']}/package")
    assert download.status_code == 200 and download.content == package
    assert download.headers["x-alien-digest"] == digest_of(package)

    # a deployment onboarded later into the group gets the group's newest release
    late = admin.onboard(token, unique("dep"))["deployment"]
    assert late["desired_release"] == release["id"]


def test_release_to_named_deployments(admin: ApiClient) -> None:
    group = admin.create_group(unique("grp"))["name"]
    token = admin.create_group_token(group)
    a, b = unique("dep"), unique("dep")
    dep_a = admin.onboard(token, a)["deployment"]
    dep_b = admin.onboard(token, b)["deployment"]
    release = admin.create_release({"type": "deployments", "deployments": [f"{group}/{a}"]})
    assert release["deployments"] == [dep_a["id"]]
    assert admin.deployment(dep_b["id"])["desired_release"] is None
    late = admin.onboard(token, unique("dep"))["deployment"]
    assert late["desired_release"] is None  # named targets do not follow new deployments


def test_release_to_all(admin: ApiClient) -> None:
    group = admin.create_group(unique("grp"))["name"]
    dep = admin.onboard(admin.create_group_token(group), unique("dep"))["deployment"]
    release = admin.create_release({"type": "all"})
    assert dep["id"] in release["deployments"]
    assert admin.deployment(dep["id"])["desired_release"] == release["id"]


def test_release_errors(admin: ApiClient) -> None:
    blob = admin.upload(sample_package(unique("pkg")))
    base = {
        "manifest": sample_manifest(),
        "package_digest": blob["digest"],
        "targets": {"type": "all"},
    }

    def create(**changes: object):
        return admin.post("/v1/releases", json={**base, **changes})

    bad_manifest = sample_manifest()
    bad_manifest["resources"][0]["kind"] = "teleporter"
    body = _error(create(manifest=bad_manifest), 422, "INVALID_STACK")
    assert body["field"].startswith("manifest.resources")
    _error(create(manifest={"name": "x"}), 422, "INVALID_STACK")
    missing = "sha256:" + "0" * 64
    _error(create(package_digest=missing), 422, "UNKNOWN_BLOB", "package_digest")
    _error(create(package_digest="nope"), 422, "VALIDATION_ERROR", "package_digest")
    _error(
        create(targets={"type": "group", "group": unique("nogroup")}),
        404,
        "NOT_FOUND",
        "targets.group",
    )
    _error(
        create(targets={"type": "deployments", "deployments": [unique("nodep")]}),
        422,
        "UNKNOWN_DEPLOYMENT",
        "targets.deployments.0",
    )
    _error(create(targets={"type": "deployments", "deployments": []}), 422, "VALIDATION_ERROR")
    _error(create(targets={"type": "planet"}), 422, "VALIDATION_ERROR", "targets")
    _error(admin.get("/v1/releases/rel_missing"), 404, "NOT_FOUND", "release_id")
    before = admin.get("/v1/releases", params={"limit": 500}).json()["items"]
    assert all(r["package_digest"] != missing for r in before)


def test_malformed_bodies_name_the_field(admin: ApiClient) -> None:
    group = admin.create_group(unique("grp"))["name"]
    token = admin.create_group_token(group)
    onboarder = admin.with_token(token)
    cases = [
        (admin, "/v1/groups", {"name": "UPPER"}, "name"),
        (admin, "/v1/groups", {"name": "ok", "colour": "red"}, "colour"),
        (admin, "/v1/groups", {}, "name"),
        (admin, "/v1/groups", {"name": 5}, "name"),
        (admin, "/v1/api-keys", {"name": "ci", "role": "emperor"}, "role"),
        (admin, f"/v1/groups/{group}/tokens", {"name": ""}, "name"),
        (onboarder, "/v1/onboard", {"name": "a", "platform": "mars"}, "platform"),
        (onboarder, "/v1/onboard", {"platform": "local"}, "name"),
        (onboarder, "/v1/onboard", {"name": "a/b", "platform": "local"}, "name"),
        (admin, "/v1/releases", {"manifest": {}, "targets": {"type": "all"}}, "package_digest"),
    ]
    for client, path, body, field in cases:
        _error(client.post(path, json=body), 422, "VALIDATION_ERROR", field)
    raw = admin.post(
        "/v1/groups", content=b"{not json", headers={"content-type": "application/json"}
    )
    _error(raw, 422, "VALIDATION_ERROR", "body")


def test_api_keys(admin: ApiClient, shared_manager: ManagerProcess) -> None:
    created = admin.post("/v1/api-keys", json={"name": "viewer", "role": "viewer"}).json()
    assert created["key"].startswith("ax_key_") and created["role"] == "viewer"
    viewer = shared_manager.client(created["key"])
    assert viewer.get("/v1/groups").status_code == 200
    _error(viewer.post("/v1/groups", json={"name": unique("grp")}), 403, "FORBIDDEN")
    listed = admin.get("/v1/api-keys").json()["items"]
    assert created["id"] in [k["id"] for k in listed] and all("key" not in k for k in listed)
    assert admin.delete(f"/v1/api-keys/{created['id']}").json()["revoked_at"] is not None
    _error(viewer.get("/v1/groups"), 401, "UNAUTHENTICATED")


def test_last_admin_key_cannot_be_revoked(admin: ApiClient) -> None:
    keys = admin.get("/v1/api-keys").json()["items"]
    admins = [k for k in keys if k["role"] == "admin" and k["revoked_at"] is None]
    assert len(admins) == 1
    _error(admin.delete(f"/v1/api-keys/{admins[0]['id']}"), 409, "LAST_ADMIN_KEY", "key_id")


def test_concurrent_writes_all_succeed(admin: ApiClient, shared_manager: ManagerProcess) -> None:
    """Parallel onboardings and releases: no 'database is locked', no lost update."""
    group = admin.create_group(unique("grp"))["name"]
    token = admin.create_group_token(group)
    names = [unique("dep") for _ in range(16)]

    def onboard(name: str) -> int:
        with shared_manager.client(token) as client:
            return client.post("/v1/onboard", json={"name": name, "platform": "local"}).status_code

    def release(_: int) -> int:
        with shared_manager.client() as client:
            return client.post(
                "/v1/releases",
                json={
                    "manifest": sample_manifest(),
                    "package_digest": blob["digest"],
                    "targets": {"type": "group", "group": group},
                },
            ).status_code

    blob = admin.upload(sample_package(unique("pkg")))
    with ThreadPoolExecutor(max_workers=8) as pool:
        onboarded = list(pool.map(onboard, names))
        released = list(pool.map(release, range(8)))
    assert onboarded == [201] * len(names)
    assert released == [201] * 8
    listed = admin.get("/v1/deployments", params={"group": group}).json()["items"]
    assert sorted(d["name"] for d in listed) == sorted(names)
    assert all(d["desired_release"] is not None for d in listed)
