"""``alien-deploy debug``: the customer checks their debug.json before any session needs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alien.agent.state import AgentState, StateDir
from alien.cli.deploy import app
from alien.debug.tls import SessionCertificate


def _run(state_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["debug", "--state-dir", str(state_dir), *args])
    return result.exit_code, result.stdout, result.stderr


def _onboarded(state_dir: Path) -> Path:
    StateDir(state_dir).save(
        AgentState(
            manager_url="http://127.0.0.1:8080",
            deployment_id="dep_0",
            deployment_name="prod",
            group="acme",
            area=str(state_dir / "area"),
        )
    )
    return state_dir


def test_without_a_debug_json_debugging_is_off(tmp_path: Path) -> None:
    _onboarded(tmp_path)
    code, out, _ = _run(tmp_path)
    assert code == 0 and "off: no debug.json" in out
    code, out, _ = _run(tmp_path, "--json")
    assert json.loads(out) == {"config": str(tmp_path / "debug.json"), "enabled": False}


def test_a_state_dir_that_holds_nothing_is_refused_as_status_refuses_it(tmp_path: Path) -> None:
    """A mistyped --state-dir must not read as "debugging is off" (of an agent elsewhere)."""
    (tmp_path / "empty").mkdir()
    for state_dir in (tmp_path / "typo", tmp_path / "empty"):
        code, out, err = _run(state_dir)
        assert (code, out) == (1, "") and "holds no onboarded deployment" in err, err
        status = CliRunner().invoke(app, ["status", "--state-dir", str(state_dir)])
        assert err == status.stderr
    # A debug.json written before ``alien-deploy up`` is checked all the same.
    (tmp_path / "empty" / "debug.json").write_text('{"http": {"allow": ["10.0.0.5:8080"]}}')
    code, out, _ = _run(tmp_path / "empty")
    assert code == 0 and "10.0.0.5:8080" in out


@pytest.mark.parametrize(
    ("content", "says", "field"),
    [
        ("[]", "debug.json must hold a JSON object", "debug"),
        ('{"gcp": "acme"}', "debug.json: gcp must be a JSON object", "gcp"),
        (
            '{"gcp": {"project": "p", "allowed_apis": "pubsub"}}',
            "debug.json: gcp.allowed_apis must be a list of API names",
            "gcp.allowed_apis",
        ),
        (
            '{"aws": {"region": "eu-west-1", "allowed_services": []}}',
            "debug.json: aws.allowed_services must list at least one AWS service (like s3)",
            "aws.allowed_services",
        ),
        (
            '{"gcp": {"project": "p", "allowed_apis": ["PubSub"]}}',
            "debug.json: gcp.allowed_apis[0] must be lowercase letters, digits and '-'",
            "gcp.allowed_apis.0",
        ),
        (
            '{"aws": {"allowed_services": ["s3"]}}',
            "debug.json: aws.region is required",
            "aws.region",
        ),
        (
            '{"gcp": {"project": "p", "allowed_apis": ["x"], "credentials": "adc"}}',
            "debug.json: gcp.credentials must be 'metadata', 'token_file' or 'none'",
            "gcp.credentials",
        ),
        (
            '{"awz": {}}',
            "debug.json: awz is not a key debug.json knows: it knows aws, http, gcp,",
            "awz",
        ),
        ('{"http": {"allow": [5]}}', "debug.json: http.allow[0] must be a string", "http.allow.0"),
    ],
)
def test_a_mistake_is_said_in_the_files_terms(
    tmp_path: Path, content: str, says: str, field: str
) -> None:
    (tmp_path / "debug.json").write_text(content)
    code, out, err = _run(tmp_path)
    assert code == 1 and out == ""
    assert f"{tmp_path}/{says}" in err and err.rstrip().endswith(f"({field})"), err
    assert "Input should" not in err and "DebugConfig" not in err


def test_each_channel_says_what_it_opens(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(SessionCertificate.generate().cert_pem)
    (tmp_path / "debug.json").write_text(
        json.dumps(
            {
                "aws": {
                    "region": "eu-west-1",
                    "allowed_services": ["s3", "sts"],
                    "role_arn": "arn:aws:iam::123456789012:role/debug",
                    "external_id": "shared-with-the-vendor",
                },
                "gcp": {"project": "acme-prod", "allowed_apis": ["pubsub"]},
                "kubernetes": {"server": "https://10.0.0.1:6443", "ca_file": str(ca)},
                "http": {"allow": ["10.0.0.5:8080"]},
            }
        )
    )
    code, out, _ = _run(tmp_path)
    assert code == 0, out
    assert "eu-west-1: s3, sts (as arn:aws:iam::123456789012:role/debug)" in out
    assert "project acme-prod: pubsub (with the metadata server's token)" in out
    assert "https://10.0.0.1:6443, namespace default (token /var/run/secrets/" in out
    assert f"CA {ca})" in out and "10.0.0.5:8080" in out
    code, out, _ = _run(tmp_path, "--json")
    data = json.loads(out)
    assert data["enabled"] and data["aws"]["external_id"] is True  # set, not shown
    assert "shared-with-the-vendor" not in out
    assert data["kubernetes"]["server"] == "https://10.0.0.1:6443"


def test_a_mistake_is_one_line_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "debug.json").write_text('{"gcp": {"project": "p", "allowed_apis": []}}')
    code, out, err = _run(tmp_path)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "gcp.allowed_apis" in err
