"""``alien-deploy debug``: what a vendor's debug session may reach through this agent.

The customer writes ``<state-dir>/debug.json`` by hand; the agent reads it only when a session
asks, so a mistake would otherwise show as a session the agent did not open. This checks the
file now and says, per channel, what it opens — exit 1 with the field at fault if it is wrong.
"""

from __future__ import annotations

from typing import Any

from alien.cli.output import console


def human(data: dict[str, Any]) -> None:
    lines = [("debug.json", data["config"])]
    if not data["enabled"]:
        lines.append(("debugging", "off: no debug.json, so no session can reach anything here"))
    if aws := data.get("aws"):
        who = f"as {aws['role_arn']}" if "role_arn" in aws else "as this agent's AWS identity"
        where = f", at {aws['endpoint_url']}" if "endpoint_url" in aws else ""
        line = f"{aws['region']}: {', '.join(aws['allowed_services'])} ({who}{where})"
        lines.append(("aws", line))
    if gcp := data.get("gcp"):
        token = {"metadata": "the metadata server's token", "none": "no token"}.get(
            gcp["credentials"], f"the token in {gcp.get('token_file')}"
        )
        moved = "".join(f"; {api} at {url}" for api, url in sorted(gcp["endpoints"].items()))
        apis = ", ".join(gcp["allowed_apis"])
        lines.append(("gcp", f"project {gcp['project']}: {apis} (with {token}{moved})"))
    if kube := data.get("kubernetes"):
        trust = f"CA {kube['ca_file']}" if "ca_file" in kube else "the system's CAs"
        line = (
            f"{kube['server']}, namespace {kube['namespace']} (token {kube['token_file']}, {trust})"
        )
        lines.append(("kubernetes", line))
    if http := data.get("http"):
        lines.append(("http", ", ".join(http["allow"])))
    for key, value in lines:
        console.print(f"{key:>10}: {value}", highlight=False, markup=False, soft_wrap=True)
