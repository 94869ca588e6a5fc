"""``alien-deploy debug``: the customer checks their debug.json before any session needs it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from alien.cli.deploy import app
from alien.debug.tls import SessionCertificate


def _run(state_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["debug", "--state-dir", str(state_dir), *args])
    return result.exit_code, result.stdout, result.stderr


def test_without_a_debug_json_debugging_is_off(tmp_path: Path) -> None:
    code, out, _ = _run(tmp_path)
    assert code == 0 and "off: no debug.json" in out
    code, out, _ = _run(tmp_path, "--json")
    assert json.loads(out) == {"config": str(tmp_path / "debug.json"), "enabled": False}


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
