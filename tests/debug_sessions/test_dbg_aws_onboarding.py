"""A customer's admin onboards an AWS account with ``alien-deploy up --platform aws``, for real.

A signature- and policy-checking moto server stands in for the customer's account: the admin's
own IAM user (allowed IAM and ``sts:GetCallerIdentity``) creates the management role the manager's
plan describes; the manager (its own IAM user, allowed ``sts:AssumeRole``, and
``ALIEN_AWS_ENDPOINT_URL`` pointing at moto) registers it after assuming it; then a vendor
engineer's ``alien debug`` runs the real ``aws`` CLI through that role.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from dbg_world import REGION, World
from debug_moto import ACCOUNT, create_user, launch_moto, setup_iam

from support.api import ApiClient
from support.manager import ManagerProcess
from support.names import unique
from support.payloads import sample_manifest
from support.processes import terminate

MANAGER_USER = "vendor-manager"
ADMIN_USER = "customer-admin"
NARROWER = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
}


@dataclass
class Account:
    """The customer's AWS account (moto) and the vendor's manager that may reach into it."""

    url: str
    admin_key: dict[str, str]
    manager: ManagerProcess

    def admin_env(self) -> dict[str, str]:
        """The customer admin's shell: their AWS credentials, nothing of the vendor's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ALIEN_"))}
        env.update(
            AWS_ACCESS_KEY_ID=self.admin_key["AccessKeyId"],
            AWS_SECRET_ACCESS_KEY=self.admin_key["SecretAccessKey"],
            AWS_ENDPOINT_URL=self.url,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        return env

    def iam(self) -> Any:
        return boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.admin_key["AccessKeyId"],
            aws_secret_access_key=self.admin_key["SecretAccessKey"],
        )


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    url, process = launch_moto(setup_calls=6)
    try:
        iam = setup_iam(url, REGION)
        # The vendor keeps its own identity to the roles alien creates (alien-*).
        roles = "arn:aws:iam::*:role/alien-*"
        manager_key = create_user(iam, MANAGER_USER, ["sts:AssumeRole"], roles)
        admin_key = create_user(iam, ADMIN_USER, ["iam:*", "sts:GetCallerIdentity"])
        manager = ManagerProcess(
            tmp_path_factory.mktemp("manager"),
            extra_env={
                "AWS_ACCESS_KEY_ID": manager_key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": manager_key["SecretAccessKey"],
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "ALIEN_AWS_ENDPOINT_URL": url,
            },
        ).start()
        try:
            yield Account(url, admin_key, manager)
        finally:
            manager.stop()
    finally:
        terminate(process)


@dataclass
class Group:
    name: str
    token: str
    admin: ApiClient


@pytest.fixture
def group(account: Account) -> Iterator[Group]:
    """A group with a release of the sample stack (a live kv store, a frozen bucket)."""
    admin = account.manager.client()
    name = unique("grp")
    admin.create_group(name)
    admin.create_release({"type": "group", "group": name}, manifest=sample_manifest("shop"))
    yield Group(name, admin.create_group_token(name), admin)
    admin.close()


def up(account: Account, group: Group, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "alien.cli.deploy", "up", "--platform", "aws"]
    argv += ["--token", group.token, "--manager", account.manager.url, "--name", name]
    argv += ["--region", REGION, *extra]
    return subprocess.run(
        argv, env=account.admin_env(), capture_output=True, text=True, timeout=120
    )


def test_up_creates_the_role_the_vendor_then_debugs_through(
    account: Account, group: Group, tmp_path: Path
) -> None:
    done = up(account, group, "acme", "--yes")
    assert done.returncode == 0, done.stderr + done.stdout
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/alien-acme"
    assert f"created {role_arn}" in done.stdout
    assert (  # how to cut the vendor off again, on one line to copy
        f"ALIEN_DEPLOYMENT_TOKEN=… alien-deploy down --platform aws --name acme --manager "
        f"{account.manager.url}\n" in done.stdout
    )

    # The customer holds the deployment's token (shown once); the vendor can never mint one.
    [token] = [w for w in done.stdout.split() if w.startswith("ax_dep_")]
    with group.admin.with_token(token) as customer:
        policy = customer.get("/v1/customer/policy")
    assert policy.status_code == 200, policy.text
    issued = group.admin.post("/v1/customer-credentials", json={"deployment": f"{group.name}/acme"})
    assert issued.status_code == 409
    assert issued.json()["error"]["code"] == "HAS_CREDENTIALS"

    config = group.admin.get(f"/v1/aws-deployments/{group.name}/acme").json()
    assert config["role_arn"] == role_arn
    assert config["external_id_set"] is True
    assert config["endpoint_url"] == account.url
    assert config["allowed_services"] == ["dynamodb", "s3", "sts"]

    role = account.iam().get_role(RoleName="alien-acme")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{MANAGER_USER}"}
    external = statement["Condition"]["StringEquals"]["sts:ExternalId"]
    plan = _plan(account, group, "acme")
    assert external == plan["external_id"]
    inline = account.iam().get_role_policy(RoleName="alien-acme", PolicyName="alien-management")
    granted = inline["PolicyDocument"]
    granted = json.loads(granted) if isinstance(granted, str) else granted
    assert granted == plan["permissions"]
    assert all("shop-cache" in str(s["Resource"]) or "shop-data" in str(s["Resource"])
               for s in granted["Statement"])  # fmt: skip

    world = _world(account, group, "acme", tmp_path)
    try:
        who = world.debug("aws", "sts", "get-caller-identity", "--output", "json")
        assert who.returncode == 0, who.stderr
        assert ":assumed-role/alien-acme/" in json.loads(who.stdout)["Arn"]
        # The role holds the stack's permissions and nothing more: no bucket of its own making.
        made = world.debug("aws", "s3", "mb", f"s3://{unique('not-granted')}")
        assert made.returncode != 0
        assert "AccessDenied" in made.stderr
    finally:
        world.close()


def test_nothing_is_created_unless_the_admin_agrees(account: Account, group: Group) -> None:
    argv = [sys.executable, "-m", "alien.cli.deploy", "up", "--platform", "aws"]
    argv += ["--token", group.token, "--manager", account.manager.url, "--name", "asked"]
    argv += ["--region", REGION]
    done = subprocess.run(
        argv, env=account.admin_env(), input="n\n", capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "trusted       arn:aws:iam::" in done.stdout  # the plan was shown before the question
    assert "Create or update this role?" in done.stdout
    roles = [r["RoleName"] for r in account.iam().list_roles()["Roles"]]
    assert "alien-asked" not in roles
    assert group.admin.get(f"/v1/aws-deployments/{group.name}/asked").status_code == 404


def test_each_deployment_gets_its_own_stable_external_id(account: Account, group: Group) -> None:
    first = _plan(account, group, "one")
    assert _plan(account, group, "one")["external_id"] == first["external_id"]
    assert _plan(account, group, "two")["external_id"] != first["external_id"]
    assert first["principal"] == f"arn:aws:iam::{ACCOUNT}:user/{MANAGER_USER}"
    assert first["group"] == group.name
    condition = first["trust_policy"]["Statement"][0]["Condition"]
    assert condition == {"StringEquals": {"sts:ExternalId": first["external_id"]}}


def test_running_up_again_brings_the_role_up_to_date(account: Account, group: Group) -> None:
    assert up(account, group, "again", "--yes").returncode == 0
    iam = account.iam()
    iam.put_role_policy(
        RoleName="alien-again",
        PolicyName="alien-management",
        PolicyDocument=json.dumps(NARROWER),
    )
    second = up(account, group, "again", "--yes")
    assert second.returncode == 0, second.stderr + second.stdout
    assert "updated arn:aws:iam::" in second.stdout
    assert "already onboarded" in second.stdout
    granted = iam.get_role_policy(RoleName="alien-again", PolicyName="alien-management")
    document = granted["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document == _plan(account, group, "again")["permissions"]


def test_a_role_alien_did_not_create_is_left_alone(account: Account, group: Group) -> None:
    iam = account.iam()
    theirs = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName="alien-theirs", AssumeRolePolicyDocument=json.dumps(theirs))
    done = up(account, group, "theirs", "--yes")
    assert done.returncode == 1
    assert "was not created by alien" in done.stderr
    trust = iam.get_role(RoleName="alien-theirs")["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust == theirs
    assert group.admin.get(f"/v1/aws-deployments/{group.name}/theirs").status_code == 404


def down(
    account: Account, name: str, *extra: str, token: str | None = None, answer: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "alien.cli.deploy", "down", "--platform", "aws", "--name", name]
    env = account.admin_env()
    if token is not None:
        env["ALIEN_DEPLOYMENT_TOKEN"] = token
        argv += ["--manager", account.manager.url]
    return subprocess.run(
        [*argv, *extra], env=env, input=answer, capture_output=True, text=True, timeout=120
    )


def _token(done: subprocess.CompletedProcess[str]) -> str:
    [token] = [w for w in done.stdout.split() if w.startswith("ax_dep_")]
    return token


def test_down_cuts_the_vendor_off_and_tells_the_manager_first(
    account: Account, group: Group, tmp_path: Path
) -> None:
    done = up(account, group, "leaving", "--yes")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "alien-deploy down --platform aws --name leaving" in done.stdout
    dep_id = group.admin.get(f"/v1/deployments/{group.name}/leaving").json()["id"]
    world = _world(account, group, "leaving", tmp_path)
    try:
        assert world.debug("aws", "sts", "get-caller-identity").returncode == 0

        kept = down(account, "leaving", token=_token(done), answer="n\n")
        assert kept.returncode == 1 and "nothing was deleted" in kept.stderr
        assert account.iam().get_role(RoleName="alien-leaving")["Role"]

        gone = down(account, "leaving", "--yes", "--json", token=_token(done))
        assert gone.returncode == 0, gone.stderr
        assert json.loads(gone.stdout) == {
            "deployment": f"{group.name}/leaving",
            "role": "alien-leaving",
            "deleted": True,
            "told_manager": True,
            "warning": None,
        }
        with pytest.raises(ClientError) as missing:
            account.iam().get_role(RoleName="alien-leaving")
        assert missing.value.response["Error"]["Code"] == "NoSuchEntity"
        assert group.admin.get(f"/v1/deployments/{group.name}/leaving").status_code == 404
        refused = world.debug("aws", "sts", "get-caller-identity")
        assert refused.returncode != 0
    finally:
        world.close()
    [record] = group.admin.get(
        "/v1/audit", params={"action": "deployment.delete", "deployment": dep_id}
    ).json()["items"]
    assert record["actor"]["kind"] == "deployment" and record["deployment_id"] == dep_id

    again = down(account, "leaving", "--yes", token=_token(done))
    assert again.returncode == 1 and "has no role alien-leaving" in again.stderr


def test_down_without_the_deployment_token_still_cuts_and_says_the_manager_was_not_told(
    account: Account, group: Group
) -> None:
    assert up(account, group, "quiet", "--yes").returncode == 0
    gone = down(account, "quiet", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert "deleted the role alien-quiet" in gone.stdout
    assert gone.stderr.startswith("warning: the manager was not told (set ALIEN_DEPLOYMENT_TOKEN")
    assert group.admin.get(f"/v1/deployments/{group.name}/quiet").status_code == 200


def test_down_leaves_a_role_alien_did_not_create(account: Account) -> None:
    iam = account.iam()
    trust = {"Version": "2012-10-17", "Statement": []}
    iam.create_role(RoleName="alien-foreign", AssumeRolePolicyDocument=json.dumps(trust))
    refused = down(account, "foreign", "--yes")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: the role alien-foreign was not created by alien-deploy: left alone (role_name)"
    )
    assert iam.get_role(RoleName="alien-foreign")["Role"]


def test_without_a_release_there_is_nothing_to_derive_the_role_from(account: Account) -> None:
    admin = account.manager.client()
    name = unique("grp")
    admin.create_group(name)
    token = admin.create_group_token(name)
    with admin.with_token(token) as customer:
        answer = customer.get(
            "/v1/onboard/aws", params={"name": "acme", "region": REGION, "account": ACCOUNT}
        )
    admin.close()
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "NO_RELEASE"


def test_only_a_group_token_onboards(account: Account, group: Group) -> None:
    params = {"name": "acme", "region": REGION, "account": ACCOUNT}
    assert group.admin.get("/v1/onboard/aws", params=params).status_code == 403
    with group.admin.with_token(None) as anonymous:
        assert anonymous.get("/v1/onboard/aws", params=params).status_code == 401
    body = {"name": "acme", "region": REGION, "role_arn": f"arn:aws:iam::{ACCOUNT}:role/x"}
    assert group.admin.post("/v1/onboard/aws", json=body).status_code == 403


def test_a_role_the_manager_cannot_assume_is_not_registered(account: Account, group: Group) -> None:
    body = {"name": "ghost", "region": REGION, "role_arn": f"arn:aws:iam::{ACCOUNT}:role/nobody"}
    with group.admin.with_token(group.token) as customer:
        answer = customer.post("/v1/onboard/aws", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "ROLE_NOT_ASSUMABLE"
    assert answer.json()["error"]["field"] == "role_arn"
    assert group.admin.get(f"/v1/aws-deployments/{group.name}/ghost").status_code == 404


def test_bad_input_names_the_field(account: Account, group: Group) -> None:
    with group.admin.with_token(group.token) as customer:
        answer = customer.get(
            "/v1/onboard/aws", params={"name": "acme", "region": REGION, "account": "12345"}
        )
        assert answer.status_code == 422
        assert "account" in answer.text
        answer = customer.post(
            "/v1/onboard/aws", json={"name": "acme", "region": REGION, "role_arn": "not-an-arn"}
        )
        assert answer.status_code == 422
        assert "role_arn" in answer.text


def _plan(account: Account, group: Group, name: str) -> dict[str, Any]:
    with group.admin.with_token(group.token) as customer:
        answer = customer.get(
            "/v1/onboard/aws", params={"name": name, "region": REGION, "account": ACCOUNT}
        )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _world(account: Account, group: Group, name: str, tmp_path: Path) -> World:
    key = group.admin.post("/v1/api-keys", json={"name": "engineer", "role": "debugger"})
    assert key.status_code == 201, key.text
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    dep = group.admin.get(f"/v1/deployments/{group.name}/{name}").json()
    return World(
        manager=account.manager,
        admin=account.manager.client(),
        debugger_key=key.json()["key"],
        ref=f"{group.name}/{name}",
        deployment_id=dep["id"],
        runtime_dir=runtime,
    )
