"""The real ``kubectl`` through a pull-model session: calls to the cluster's API leave from the
agent, with the agent's service account token, to its API server, checked against the cluster's
CA. No Kubernetes API server can be installed on this machine (see shared/notes), so the HTTPS
service "inside" plays the API server's ``/version``: what is tested is the channel — kubectl's
TLS and token to the session endpoint, the tunnel, the token swap and CA check at the agent."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbg_world import World
from debug_moto import MotoServer
from kube_api import KubeApi
from pull_world import PullDeployment, make_world, start_agent
from targets import HELLO, SERVER_VERSION, Targets

from support.manager import ManagerProcess

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
SA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.the-agents-service-account"


@pytest.fixture(scope="module")
def cluster_deployment(
    pull_manager: ManagerProcess,
    moto: MotoServer,
    targets: Targets,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PullDeployment]:
    root = tmp_path_factory.mktemp("kube")
    token_file = root / "sa-token"
    token_file.write_text(SA_TOKEN)
    config = {
        "kubernetes": {
            "server": f"https://{targets.https.authority}",
            "ca_file": str(targets.https.ca_file),
            "token_file": str(token_file),
            "namespace": "shop",
        }
    }
    found = start_agent(pull_manager, moto, root, config)
    yield found
    found.agent.stop()


@pytest.fixture
def kworld(
    pull_manager: ManagerProcess, cluster_deployment: PullDeployment, tmp_path: Path
) -> Iterator[World]:
    w = make_world(pull_manager, cluster_deployment, tmp_path)
    yield w
    w.close()


def test_kubectl_reaches_the_api_server_as_the_agents_service_account(
    kworld: World, targets: Targets
) -> None:
    before = len(targets.https.server.seen)
    result = kworld.debug("kubectl", "version", "-o", "json")
    assert result.returncode == 0, result.stderr
    server = json.loads(result.stdout)["serverVersion"]
    assert server["gitVersion"] == SERVER_VERSION["gitVersion"]
    assert "Kubernetes (namespace shop) via https://127.0.0.1:" in result.stderr
    seen = {
        (m, path.partition("?")[0], auth) for m, path, auth in targets.https.server.seen[before:]
    }
    assert seen == {("GET", "/version", f"Bearer {SA_TOKEN}")}  # kubectl asks once or twice
    requests = kworld.requests(kworld.latest_session()["id"])
    assert {r["target"] for r in requests} == {"kubernetes:GET /version"}
    assert all(r["outcome"] == "succeeded" and r["details"]["status"] == 200 for r in requests)


def test_kubectl_starts_in_the_offered_namespace_with_a_session_config(kworld: World) -> None:
    result = kworld.debug(
        "sh",
        "-ec",
        'kubectl config view --minify -o "jsonpath={..namespace}"; echo;'
        ' echo "$KUBECONFIG"; echo "$KUBECACHEDIR"; kubectl get --raw /hello',
    )
    assert result.returncode == 0, result.stderr
    namespace, kubeconfig, cache, answered = result.stdout.splitlines()
    assert namespace == "shop"
    session_dir = Path(kubeconfig).parent
    assert Path(cache).parent == session_dir and session_dir.name.startswith("dbg-")
    assert answered.encode() == HELLO
    assert not session_dir.exists()  # removed when the command exited


def test_a_token_other_than_the_sessions_is_refused_at_the_endpoint(
    kworld: World, targets: Targets
) -> None:
    before = len(targets.https.server.seen)
    result = kworld.debug("kubectl", "--token", "not-the-session-token", "get", "--raw", "/hello")
    assert result.returncode != 0
    assert "You must be logged in" in result.stderr  # kubectl's words for a 401 ...
    assert "does not carry this debug session's token" in result.stderr  # ... with our reason
    assert targets.https.server.seen[before:] == []  # never left the engineer's machine


def test_kubectl_as_another_user_fails_loudly_and_is_audited_as_denied(
    kworld: World, targets: Targets
) -> None:
    """``--as`` would have the API server run the call as that user if the service account may
    impersonate: the agent refuses it, kubectl says so, and the API server never sees it."""
    before = len(targets.https.server.seen)
    result = kworld.debug(
        "kubectl", "--as", "system:admin", "--as-group", "system:masters", "get", "--raw", "/hello"
    )
    assert result.returncode != 0
    assert "Error from server (Forbidden)" in result.stderr
    assert "impersonate-group, impersonate-user" in result.stderr
    assert "IMPERSONATION_NOT_ALLOWED" in result.stderr
    assert targets.https.server.seen[before:] == []
    requests = kworld.requests(kworld.latest_session()["id"])
    asked = {r["target"] for r in requests}  # kubectl may ask /version first
    assert "kubernetes:GET /hello" in asked
    assert asked <= {"kubernetes:GET /version", "kubernetes:GET /hello"}
    assert all(r["outcome"] == "denied" and r["details"]["status"] == 403 for r in requests)


def test_kubectl_create_token_is_refused_audited_and_never_reaches_the_api_server(
    kworld: World, targets: Targets
) -> None:
    """A service account token would outlive the session: the agent refuses the TokenRequest,
    kubectl prints why, the audit says denied, and the API server never sees it."""
    before = len(targets.https.server.seen)
    result = kworld.debug("kubectl", "create", "token", "default")
    assert result.returncode != 0
    assert "error: failed to create token: TokenRequest mints a service account token" in (
        result.stderr
    )
    assert "(CREDENTIAL_MINTING_REFUSED)" in result.stderr
    assert [s for s in targets.https.server.seen[before:] if s[0] != "GET"] == []  # /version
    requests = kworld.requests(kworld.latest_session()["id"])
    [request] = [r for r in requests if r["target"] != "kubernetes:GET /version"]
    assert request["target"] == (
        "kubernetes:POST /api/v1/namespaces/shop/serviceaccounts/default/token"
    )
    assert request["outcome"] == "denied" and request["details"]["status"] == 403


def test_bindings_and_token_secrets_are_refused_other_secrets_go_through(
    kworld: World, targets: Targets
) -> None:
    """kubectl sends Secrets as protobuf: the agent reads the type there, refuses a token
    Secret and lets an ordinary one through (the stand-in server answers it as it can)."""
    before = len(targets.https.server.seen)
    result = kworld.debug(
        "sh",
        "-c",
        "kubectl create clusterrolebinding mine --clusterrole=cluster-admin --user=me;"
        " kubectl create secret generic tok --type=kubernetes.io/service-account-token;"
        " kubectl create secret generic db --from-literal=password=s3cret; true",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("(CREDENTIAL_MINTING_REFUSED)") == 2
    assert "writing clusterrolebindings grants permissions" in result.stderr
    assert "a Secret of type kubernetes.io/service-account-token is given" in result.stderr
    seen = targets.https.server.seen[before:]
    posted = [(m, path.partition("?")[0], auth) for m, path, auth in seen if m != "GET"]
    assert posted == [("POST", "/api/v1/namespaces/shop/secrets", f"Bearer {SA_TOKEN}")]
    requests = kworld.requests(kworld.latest_session()["id"])
    calls = [r for r in requests if r["target"] != "kubernetes:GET /version"]
    assert sorted((r["target"], r["outcome"]) for r in calls) == [
        ("kubernetes:POST /api/v1/namespaces/shop/secrets", "denied"),
        ("kubernetes:POST /api/v1/namespaces/shop/secrets", "succeeded"),
        ("kubernetes:POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "denied"),
    ]


@pytest.fixture(scope="module")
def exec_cluster(
    pull_manager: ManagerProcess, moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PullDeployment, KubeApi]]:
    """A deployment whose cluster is the stand-in API server that runs ``kubectl exec``."""
    root = tmp_path_factory.mktemp("kube-exec")
    api = KubeApi(root / "api-ca.pem").start()
    token_file = root / "sa-token"
    token_file.write_text(SA_TOKEN)
    config = {
        "kubernetes": {
            "server": api.url,
            "ca_file": str(api.ca_file),
            "token_file": str(token_file),
            "namespace": "shop",
        }
    }
    found = start_agent(pull_manager, moto, root, config)
    yield found, api
    found.agent.stop()
    api.stop()


@pytest.fixture
def exec_world(
    pull_manager: ManagerProcess,
    exec_cluster: tuple[PullDeployment, KubeApi],
    tmp_path: Path,
) -> Iterator[World]:
    w = make_world(pull_manager, exec_cluster[0], tmp_path)
    yield w
    w.close()


def test_kubectl_exec_runs_in_the_pod_through_the_session(
    exec_world: World, exec_cluster: tuple[PullDeployment, KubeApi]
) -> None:
    api = exec_cluster[1]
    before = len(api.seen)
    result = exec_world.debug("kubectl", "exec", "web-0", "--", "echo", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran: echo hi\n"
    exec_calls = [s for s in api.seen[before:] if "/exec?" in s[1]]
    assert len(exec_calls) == 1
    assert exec_calls[0][1].startswith("/api/v1/namespaces/shop/pods/web-0/exec?command=echo")
    assert {auth for _, _, auth in api.seen[before:]} == {f"Bearer {SA_TOKEN}"}
    requests = exec_world.requests(exec_world.latest_session()["id"])
    (audited,) = [r for r in requests if r["target"].endswith("/pods/web-0/exec")]
    assert audited["target"] == "kubernetes:GET /api/v1/namespaces/shop/pods/web-0/exec"
    assert audited["details"]["status"] == 101 and audited["outcome"] == "succeeded"
    assert audited["details"]["bytes_out"] > 0


def test_kubectl_exec_carries_stdin_both_ways(exec_world: World) -> None:
    text = "hello through the tunnel, both ways"
    result = exec_world.debug("sh", "-c", f"echo '{text}' | kubectl exec -i web-0 -- cat")
    assert result.returncode == 0, result.stderr
    assert result.stdout == text + "\n"


def test_kubectl_attach_reaches_the_container_through_the_session(
    exec_world: World, exec_cluster: tuple[PullDeployment, KubeApi]
) -> None:
    api = exec_cluster[1]
    before = len(api.seen)
    result = exec_world.debug("kubectl", "attach", "web-0", "-c", "web")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "attached to web\n"
    [attach] = [s for s in api.seen[before:] if "/attach?" in s[1]]
    assert attach[1].startswith("/api/v1/namespaces/shop/pods/web-0/attach?")
    assert attach[2] == f"Bearer {SA_TOKEN}"
    requests = exec_world.requests(exec_world.latest_session()["id"])
    (audited,) = [r for r in requests if r["target"].endswith("/pods/web-0/attach")]
    assert audited["details"]["status"] == 101 and audited["outcome"] == "succeeded"
