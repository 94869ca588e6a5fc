"""One command to every deployment of a group (``acme``: prod, east, west — three real agents):
results per deployment, at most ``max_concurrency`` running at once, and no new ones started
once more than ``max_errors`` failed."""

from __future__ import annotations

import json
from pathlib import Path

from agent_command_helpers import alien_cli, journal
from agent_deployments import Deployed

REFS = ["acme/east", "acme/prod", "acme/west"]


def test_fan_out_runs_on_every_deployment_of_the_group(fleet: list[Deployed]) -> None:
    with fleet[0].client() as client:
        results = client.fan_out("echo", {"hello": "fleet"}, group="acme", max_concurrency=3)
    assert sorted(results) == REFS
    assert all(r.ok and r.result["params"] == {"hello": "fleet"} for r in results.values())
    ids = {r.result["command_id"] for r in results.values()}
    assert len(ids) == 3  # one command per deployment


def test_fan_out_keeps_to_max_concurrency(fleet: list[Deployed], tmp_path: Path) -> None:
    log = tmp_path / "journal"
    with fleet[0].client() as client:
        results = client.fan_out(
            "slow", {"seconds": 0.5, "journal": str(log)}, group="acme", max_concurrency=2
        )
    assert all(r.ok for r in results.values())
    running = most = 0
    for line in journal(log):
        running += 1 if line.startswith("started ") else -1
        most = max(most, running)
    assert most == 2


def test_fan_out_stops_starting_after_max_errors(fleet: list[Deployed]) -> None:
    manager = fleet[0].manager
    done = alien_cli(
        manager.url, manager.admin_key,
        "commands", "invoke", "--group", "acme", "--command", "fail",
        "--max-concurrency", "1", "--max-errors", "0", "--json",
    )  # fmt: skip
    assert done.returncode == 1
    report = json.loads(done.stdout)
    failed = [ref for ref, r in report.items() if not r["ok"] and not r["skipped"]]
    skipped = [ref for ref, r in report.items() if r["skipped"]]
    assert len(failed) == 1 and len(skipped) == 2, report
    assert report[failed[0]]["error"]["code"] == "HANDLER_ERROR"
    assert {report[ref]["error"]["code"] for ref in skipped} == {"FAN_OUT_STOPPED"}
    assert "3 of 3 deployment(s) did not succeed" in done.stderr
