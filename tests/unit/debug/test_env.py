"""Child environments: what each tool is pointed at and what of the user's setup is cut off."""

from __future__ import annotations

import base64
import configparser
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509

from alien.debug.env import (
    ChildEnv,
    aws_command,
    aws_env,
    gcloud_env,
    http_proxy_env,
    kubectl_env,
)
from alien.debug.session_dir import SessionDir
from alien.debug.session_keys import SessionKeys
from alien.debug.tls import SessionCertificate

USER_ENV = {
    "PATH": "/usr/bin",
    "HOME": "/home/eng",
    "AWS_PROFILE": "prod-admin",
    "AWS_SESSION_TOKEN": "user-token",
    "AWS_ENDPOINT_URL_S3": "https://s3.real.example",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/creds",
    "NO_PROXY": "corp.example",
    "KUBECONFIG": "/home/eng/.kube/config",
    "GOOGLE_APPLICATION_CREDENTIALS": "/home/eng/sa.json",
    "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE": "https://elsewhere/",
}


@pytest.fixture
def files(tmp_path: Path):
    with SessionDir.create("dbg_env", root=tmp_path / "root") as session:
        yield session


@pytest.fixture
def keys() -> SessionKeys:
    return SessionKeys.generate()


def _mode(path: str) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


def test_aws_env_points_at_the_proxy_and_cuts_off_user_credentials(files, keys) -> None:
    env = aws_env(files, endpoint_url="http://127.0.0.1:4000", region="eu-west-1", keys=keys)
    child = env.apply(USER_ENV)
    assert child["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4000"
    assert child["AWS_ACCESS_KEY_ID"] == keys.aws_access_key_id
    assert child["AWS_SECRET_ACCESS_KEY"] == keys.aws_secret_access_key
    assert child["AWS_REGION"] == child["AWS_DEFAULT_REGION"] == "eu-west-1"
    for gone in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        assert gone not in child
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in child
    assert child["PATH"] == "/usr/bin"
    assert child["NO_PROXY"] == "corp.example,127.0.0.1,localhost,::1"
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        assert Path(child[name]).parent == files.path
        assert _mode(child[name]) == 0o600
    credentials = configparser.ConfigParser()
    credentials.read(child["AWS_SHARED_CREDENTIALS_FILE"])
    assert credentials["default"]["aws_access_key_id"] == keys.aws_access_key_id
    config = configparser.ConfigParser()
    config.read(child["AWS_CONFIG_FILE"])
    assert config["default"]["region"] == "eu-west-1"
    assert "signature_version = s3v4" in config["default"]["s3"]


def test_aws_command_adds_the_endpoint_only_to_aws() -> None:
    url = "http://127.0.0.1:4000"
    assert aws_command(["/x/aws", "sqs", "list-queues"], url) == [
        "/x/aws",
        "--endpoint-url",
        url,
        "sqs",
        "list-queues",
    ]
    explicit = ["aws", "--endpoint-url=http://other", "s3", "ls"]
    assert aws_command(explicit, url) == explicit
    assert aws_command(["kubectl", "get", "pods"], url) == ["kubectl", "get", "pods"]
    assert aws_command([], url) == []


def test_gcloud_env_uses_a_fresh_config_and_the_session_token(files, keys) -> None:
    env = gcloud_env(
        files,
        endpoint_url="http://127.0.0.1:4001/",
        project="acme-prod",
        keys=keys,
        apis=["pubsub", "storage"],
    )
    child = env.apply(USER_ENV)
    assert Path(child["CLOUDSDK_CONFIG"]).is_dir()
    assert _mode(child["CLOUDSDK_CONFIG"]) == 0o700
    assert Path(child["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"]).read_text() == keys.bearer_token
    assert _mode(child["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"]) == 0o600
    assert child["CLOUDSDK_CORE_PROJECT"] == "acme-prod"
    assert child["CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB"] == "http://127.0.0.1:4001/pubsub/"
    assert child["CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE"] == "http://127.0.0.1:4001/storage/"
    assert "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE" not in child
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in child


def test_kubectl_env_writes_a_kubeconfig_trusting_only_the_session_cert(files, keys) -> None:
    cert = SessionCertificate.generate()
    env = kubectl_env(
        files, server_url="https://127.0.0.1:4002", ca_pem=cert.cert_pem, keys=keys, namespace="app"
    )
    child = env.apply(USER_ENV)
    assert Path(child["KUBECONFIG"]).parent == files.path
    assert _mode(child["KUBECONFIG"]) == 0o600
    assert Path(child["KUBECACHEDIR"]).is_dir()
    config = json.loads(Path(child["KUBECONFIG"]).read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:4002"
    ca = x509.load_pem_x509_certificate(base64.b64decode(cluster["certificate-authority-data"]))
    san = ca.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    assert config["users"][0]["user"]["token"] == keys.bearer_token
    assert config["contexts"][0]["context"]["namespace"] == "app"
    with pytest.raises(ValueError, match="https"):
        kubectl_env(files, server_url="http://127.0.0.1:1", ca_pem=cert.cert_pem, keys=keys)


def test_http_proxy_env_carries_the_token_as_proxy_credentials(keys) -> None:
    child = http_proxy_env(proxy_host="127.0.0.1", proxy_port=4003, keys=keys).apply(
        {"ALL_PROXY": "socks5://corp:1080"}
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert child[name].endswith("@127.0.0.1:4003")
        assert child[name].startswith("http://alien:")
    assert child["NO_PROXY"] == "127.0.0.1,localhost,::1"
    assert "ALL_PROXY" not in child


def test_child_env_merge_and_defaults() -> None:
    merged = ChildEnv(set={"A": "1"}, unset=frozenset({"X"})) | ChildEnv(
        set={"A": "2", "B": "3"}, unset_prefixes=("Y_",)
    )
    assert merged.apply({"X": "x", "Y_1": "y", "Z": "z"}) == {"A": "2", "B": "3", "Z": "z"}


def test_session_keys_never_show_secrets() -> None:
    keys = SessionKeys.generate()
    assert len(keys.aws_access_key_id) == 20
    assert keys.aws_secret_access_key not in repr(keys)
    assert keys.bearer_token not in repr(keys)
    assert SessionKeys.generate() != keys
