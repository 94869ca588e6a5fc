"""The real ``gcloud`` through a pull-model session: Google API calls leave from the agent, with
the agent's own access token, to the APIs the customer allows — here Google's Pub/Sub emulator
(and, for the token check and the IAM calls, a loopback service standing where the logging and
IAM APIs would be)."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbg_world import World
from debug_moto import MotoServer
from pubsub_emulator import EMULATOR, PubSubEmulator, start_pubsub
from pull_world import PullDeployment, make_world, start_agent
from targets import HELLO, Targets

from support.manager import ManagerProcess

GCLOUD = shutil.which("gcloud")
pytestmark = pytest.mark.skipif(
    GCLOUD is None or not EMULATOR.exists(), reason="gcloud and its Pub/Sub emulator are needed"
)
PROJECT = "acme-prod"
AGENT_TOKEN = "ya29.the-agents-own-token"


@pytest.fixture(scope="module")
def pubsub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    emulator = start_pubsub(tmp_path_factory.mktemp("pubsub") / "emulator.log")
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def gcp_deployment(
    pull_manager: ManagerProcess,
    moto: MotoServer,
    targets: Targets,
    pubsub: PubSubEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PullDeployment]:
    root = tmp_path_factory.mktemp("gcp")
    token_file = root / "agent-token"
    token_file.write_text(AGENT_TOKEN + "\n")
    config = {
        "gcp": {
            "project": PROJECT,
            "allowed_apis": ["pubsub", "logging", "iam"],
            "endpoints": {
                "pubsub": pubsub.url,
                "logging": f"http://{targets.http.authority}",
                "iam": f"http://{targets.http.authority}",
            },
            "credentials": "token_file",
            "token_file": str(token_file),
        }
    }
    found = start_agent(pull_manager, moto, root, config)
    yield found
    found.agent.stop()


@pytest.fixture
def gworld(
    pull_manager: ManagerProcess, gcp_deployment: PullDeployment, tmp_path: Path
) -> Iterator[World]:
    w = make_world(pull_manager, gcp_deployment, tmp_path)
    yield w
    w.close()


def _gcloud_script(*lines: str) -> tuple[str, ...]:
    """One ``alien debug`` session running several gcloud commands (a session each would add
    seconds for nothing)."""
    return ("sh", "-ec", "\n".join(lines))


def test_gcloud_publishes_and_pulls_through_the_agent(gworld: World) -> None:
    topic = f"orders-{secrets.token_hex(3)}"
    result = gworld.debug(
        *_gcloud_script(
            f"gcloud pubsub topics create {topic}",
            f"gcloud pubsub subscriptions create {topic}-sub --topic {topic}",
            f"gcloud pubsub topics publish {topic} --message 'hello from the engineer'",
            f"gcloud pubsub subscriptions pull {topic}-sub --auto-ack"
            " --format='value(message.data)'",
            "gcloud pubsub topics list --format='value(name)'",
            "gcloud config get-value project",
        )
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "hello from the engineer" in lines
    assert f"projects/{PROJECT}/topics/{topic}" in lines
    assert lines[-1] == PROJECT
    session = gworld.latest_session()
    assert "GCP project acme-prod (pubsub, logging, iam)" in result.stderr
    requests = gworld.requests(session["id"])
    created_topic = f"gcp/pubsub:PUT /v1/projects/{PROJECT}/topics/{topic}"
    created = [r for r in requests if r["target"] == created_topic]
    assert len(created) == 1 and created[0]["details"]["status"] == 200
    assert all(r["target"].startswith("gcp/pubsub:") for r in requests)


def test_an_api_the_customer_did_not_allow_is_refused_and_audited(gworld: World) -> None:
    result = gworld.debug("gcloud", "secrets", "list")
    assert result.returncode != 0
    assert "not on this deployment's debug allowlist" in result.stderr
    [request] = gworld.requests(gworld.latest_session()["id"])
    assert request["target"].startswith("gcp/secretmanager:GET /v1/projects/")
    assert request["outcome"] == "denied" and request["details"]["status"] == 403


def test_calls_carry_the_agents_token_never_the_sessions(gworld: World, targets: Targets) -> None:
    before = len(targets.http.server.seen)
    endpoint = "${CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING}hello"
    result = gworld.debug(
        *_gcloud_script(
            'token=$(cat "$CLOUDSDK_AUTH_ACCESS_TOKEN_FILE")',
            f'curl -sS --fail-with-body -H "Authorization: Bearer $token" "{endpoint}"',
            "echo",
            f'curl -sS -o /dev/null -w "%{{http_code}}" "{endpoint}"',  # without the token
        )
    )
    assert result.returncode == 0, result.stderr
    answered, refused = result.stdout.splitlines()
    assert answered.encode() == HELLO
    assert refused == "401"
    assert targets.http.server.seen[before:] == [("GET", "/hello", f"Bearer {AGENT_TOKEN}")]
    [request] = gworld.requests(gworld.latest_session()["id"])
    assert request["target"] == "gcp/logging:GET /hello"


SERVICE_ACCOUNT = f"app@{PROJECT}.iam.gserviceaccount.com"


def test_a_service_account_key_is_refused_audited_and_never_reaches_the_api(
    gworld: World, targets: Targets, tmp_path: Path
) -> None:
    """A key would outlive the session: the agent refuses ``keys create``, gcloud prints why,
    the audit says denied and the API never sees it; listing the keys goes through."""
    before = len(targets.http.server.seen)
    key_file = tmp_path / "key.json"
    result = gworld.debug(
        *_gcloud_script(
            f"gcloud iam service-accounts keys create {key_file} --iam-account {SERVICE_ACCOUNT}"
            " || true",
            f"gcloud iam service-accounts keys list --iam-account {SERVICE_ACCOUNT} || true",
        )
    )
    assert result.returncode == 0, result.stderr
    assert "creating or uploading a service account key mints a credential" in result.stderr
    assert "CREDENTIAL_MINTING_REFUSED" in result.stderr
    assert not key_file.exists() or key_file.read_bytes() == b""  # gcloud may open it first
    seen = [(m, path.partition("?")[0]) for m, path, _ in targets.http.server.seen[before:]]
    assert seen == [("GET", f"/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}/keys")]
    requests = gworld.requests(gworld.latest_session()["id"])
    assert sorted((r["target"], r["outcome"], r["details"]["status"]) for r in requests) == [
        (f"gcp/iam:GET /v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}/keys", "failed", 404),
        (f"gcp/iam:POST /v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}/keys", "denied", 403),
    ]
