"""Large params and results through the manager's blob store by signed URLs — real manager.

The caller uploads params over 256 KiB with ``POST /v1/commands/payloads`` and names them by
``params_ref``; the agent fetches them from the delivery's signed URL, uploads its result to the
signed ``result_upload_url`` and answers with the ``result_ref`` it got back; the caller fetches
the result from the signed URL in the command. 100 MB each way must work with the manager's
memory staying flat.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import psutil
import pytest
from agent_double import (
    KNOWN_COMMANDS,
    CommandAgent,
    Deployment,
    create_command,
    payload_path,
    running_deployment,
)

from alien.manager.commands.signing import Grant, UrlOp, UrlSigner
from support.api import ApiClient
from support.manager import ManagerProcess

CHUNK = 1024 * 1024


def _document(size: int) -> Iterator[bytes]:
    """A JSON object of about ``size`` bytes, produced in chunks (never whole in memory)."""
    yield b'{"blob":"'
    for _ in range(size // CHUNK):
        yield b"a" * CHUNK
    yield b'"}'


def _digest(chunks: Iterator[bytes]) -> tuple[str, int]:
    hasher, size = hashlib.sha256(), 0
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


def _upload_params(admin: ApiClient, deployment: Deployment, size: int) -> dict[str, object]:
    response = admin.post(
        "/v1/commands/payloads",
        params={"deployment": deployment.ref},
        content=_document(size),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _round_trip(admin: ApiClient, deployment: Deployment, agent: CommandAgent, size: int) -> None:
    """Params of ``size`` bytes in, a result of ``size`` bytes out, all streamed."""
    ref = _upload_params(admin, deployment, size)
    expected, expected_size = _digest(_document(size))
    assert ref == {"sha256": expected, "size": expected_size}
    created = create_command(admin, deployment, params_ref=ref).json()
    assert created["params_ref"] == ref and created["params"] is None

    offer = agent.command()
    params_ref = offer["envelope"]["params_ref"]
    assert offer["envelope"]["params"] is None and params_ref["sha256"] == expected
    with httpx.stream("GET", params_ref["url"], timeout=120) as fetched:  # no token: signed
        assert fetched.status_code == 200
        assert _digest(fetched.iter_bytes(CHUNK)) == (expected, expected_size)

    uploaded = httpx.put(offer["result_upload_url"], content=_document(size), timeout=120)
    assert uploaded.status_code == 200, uploaded.text
    result_ref = uploaded.json()
    assert result_ref["sha256"] == expected and result_ref["size"] == expected_size
    receipt = agent.respond(offer, ok=True, result=None, result_ref=result_ref)
    assert receipt["ok"] is True and receipt["state"] == "succeeded"

    done = admin.get(f"/v1/commands/{created['id']}").json()
    assert done["result"] is None and done["result_ref"]["sha256"] == expected
    with httpx.stream("GET", done["result_ref"]["url"], timeout=120) as result:
        assert result.status_code == 200
        assert _digest(result.iter_bytes(CHUNK)) == (expected, expected_size)


def test_large_params_and_result_travel_by_signed_urls(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    _round_trip(admin, deployment, agent, 1024 * 1024)


@pytest.mark.slow
def test_100_mb_each_way_with_flat_manager_memory(
    commands_manager: ManagerProcess, admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    manager = psutil.Process(commands_manager._proc.pid)  # type: ignore[union-attr]
    baseline = manager.memory_info().rss
    peak = baseline
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, manager.memory_info().rss)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        _round_trip(admin, deployment, agent, 100 * 1024 * 1024)
    finally:
        done.set()
        watcher.join()
    grown = (peak - baseline) / 1024**2
    assert grown < 48, f"the manager's RSS grew by {grown:.0f} MiB moving 2 x 100 MB"


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_signed_urls_refuse_tampering_and_expire(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    ref = _upload_params(admin, deployment, 300 * 1024)
    created = create_command(admin, deployment, params_ref=ref, timeout=1).json()
    offer = agent.command()
    url = offer["envelope"]["params_ref"]["url"]
    assert httpx.get(url, timeout=10).status_code == 200

    query = parse_qs(urlsplit(url).query)
    forged = [
        _with_query(url, sig=query["sig"][0][:-2] + "AA"),  # another signature
        _with_query(url, exp=str(int(query["exp"][0]) + 3600)),  # a later expiry
        _with_query(url, dep="dep_0000000000000000000000000a"),  # another deployment
        url.replace(created["id"], "cmd_0000000000000000000000000a"),  # another command
        url.replace("/params?", "/result?"),  # another operation
    ]
    for bad in forged:
        refused = httpx.get(bad, timeout=10)
        assert refused.status_code == 403, (bad, refused.text)
        assert refused.json()["error"]["code"] == "SIGNED_URL_INVALID"
    no_sig = httpx.get(url.split("&sig=")[0], timeout=10)
    assert no_sig.status_code == 422  # missing query parameter
    put_with_get = httpx.put(url.replace("/params?", "/result?"), content=b"{}", timeout=10)
    assert put_with_get.status_code == 403

    # The URLs die with the command: once its deadline passed, they are refused as expired.
    admin.get(f"/v1/commands/{created['id']}", params={"wait": 10})
    time.sleep(max(0.0, int(query["exp"][0]) - time.time() + 0.05))  # the URL's own expiry
    expired = httpx.get(url, timeout=10)
    assert expired.status_code == 403 and expired.json()["error"]["code"] == "SIGNED_URL_EXPIRED"


def test_result_ref_must_name_an_upload_for_this_command(
    admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    create_command(admin, deployment)
    offer = agent.command()
    fake = {"url": "http://127.0.0.1/x", "size": 3, "sha256": "0" * 64}
    refused = agent.respond(offer, ok=True, result=None, result_ref=fake)
    assert refused["ok"] is False and refused["code"] == "UNKNOWN_PAYLOAD"
    assert agent.respond(offer, "fine")["ok"] is True  # the lease still holds; a real answer
    late = httpx.put(offer["result_upload_url"], content=b'{"a":1}', timeout=10)
    assert late.status_code == 409 and late.json()["error"]["code"] == "COMMAND_FINISHED"


def test_params_uploads_are_bound_to_their_deployment(
    admin: ApiClient, deployment: Deployment
) -> None:
    ref = _upload_params(admin, deployment, 300 * 1024)
    other = running_deployment(admin)
    refused = create_command(admin, other, params_ref=ref)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "UNKNOWN_PAYLOAD"
    wrong_size = create_command(admin, deployment, params_ref={**ref, "size": 1})
    assert wrong_size.status_code == 422
    assert wrong_size.json()["error"]["field"] == "params_ref.size"


# --- result uploads belong to their delivery's lease ------------------------------------------


def _result_document() -> bytes:
    """A result no other upload has (so whether it was stored shows in the blob store)."""
    return b'{"result":"' + uuid.uuid4().hex.encode() + b'"}'


def _stored(manager: ManagerProcess, document: bytes) -> bool:
    return payload_path(manager.data_dir, hashlib.sha256(document).hexdigest()).exists()


def _assert_stale(refused: httpx.Response) -> None:
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "STALE_LEASE" and error["field"] == "lease"


@pytest.fixture
def lost_lease(
    short_lease_manager: ManagerProcess,
) -> Iterator[tuple[ManagerProcess, CommandAgent, dict[str, Any]]]:
    """A command whose first delivery lost its lease (1 s here, never renewed): the manager,
    the agent and that first delivery; the second is the agent's next ``command``."""
    with short_lease_manager.client() as admin:
        deployment = running_deployment(admin, commands=KNOWN_COMMANDS)
        with CommandAgent(short_lease_manager.ws_url, deployment.token) as agent:
            create_command(admin, deployment, max_attempts=3, timeout=30)
            yield short_lease_manager, agent, agent.command()


def test_a_result_upload_under_a_lost_lease_is_refused_and_stores_nothing(
    lost_lease: tuple[ManagerProcess, CommandAgent, dict[str, Any]],
) -> None:
    manager, agent, first = lost_lease
    agent.next("command_cancel", timeout=5)  # the first lease ran out
    second = agent.command(timeout=5)
    document = _result_document()
    _assert_stale(httpx.put(first["result_upload_url"], content=document, timeout=10))
    assert not _stored(manager, document)
    # The same bytes through the current delivery's URL are its result.
    assert agent.ack(second)["ok"]
    uploaded = httpx.put(second["result_upload_url"], content=document, timeout=10)
    assert uploaded.status_code == 200, uploaded.text
    receipt = agent.respond(second, ok=True, result=None, result_ref=uploaded.json())
    assert receipt["ok"] and receipt["state"] == "succeeded"


def test_a_lease_lost_while_the_result_streams_in_stores_nothing(
    lost_lease: tuple[ManagerProcess, CommandAgent, dict[str, Any]],
) -> None:
    manager, agent, first = lost_lease
    document = _result_document()

    def body() -> Iterator[bytes]:
        yield document[:10]  # accepted: the lease was current when the upload began
        agent.next("command_cancel", timeout=5)  # and then ran out
        yield document[10:]

    _assert_stale(httpx.put(first["result_upload_url"], content=body(), timeout=10))
    assert not _stored(manager, document)


def test_a_response_names_only_a_result_its_own_lease_uploaded(
    lost_lease: tuple[ManagerProcess, CommandAgent, dict[str, Any]],
) -> None:
    _, agent, first = lost_lease
    document = _result_document()
    earlier = httpx.put(first["result_upload_url"], content=document, timeout=10)
    assert earlier.status_code == 200, earlier.text  # while the first lease held
    agent.next("command_cancel", timeout=5)
    second = agent.command(timeout=5)
    assert agent.ack(second)["ok"]
    refused = agent.respond(second, ok=True, result=None, result_ref=earlier.json())
    assert refused["ok"] is False and refused["code"] == "UNKNOWN_PAYLOAD"
    own = httpx.put(second["result_upload_url"], content=document, timeout=10)
    assert own.status_code == 200, own.text
    receipt = agent.respond(second, ok=True, result=None, result_ref=own.json())
    assert receipt["ok"] and receipt["state"] == "succeeded"


def test_an_upload_url_signed_without_a_lease_stores_for_the_current_one(
    commands_manager: ManagerProcess, admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    """A URL handed out by the previous version (no ``lease``) keeps working until its
    command's deadline: its upload is the current lease's."""
    create_command(admin, deployment)
    offer = agent.command()
    envelope = offer["envelope"]
    query = parse_qs(urlsplit(offer["result_upload_url"]).query)
    assert query["lease"] == [envelope["lease_id"]]  # what this version hands out
    signer = UrlSigner.load_or_create(commands_manager.data_dir)
    grant = Grant(UrlOp.RESULT_PUT, envelope["id"], deployment.id, int(query["exp"][0]))
    legacy = offer["result_upload_url"].split("?")[0] + "?" + signer.query(grant)
    uploaded = httpx.put(legacy, content=_result_document(), timeout=10)
    assert uploaded.status_code == 200, uploaded.text
    receipt = agent.respond(offer, ok=True, result=None, result_ref=uploaded.json())
    assert receipt["ok"] and receipt["state"] == "succeeded"


def test_one_result_per_lease(
    commands_manager: ManagerProcess, admin: ApiClient, deployment: Deployment, agent: CommandAgent
) -> None:
    """The same document again is the same answer; another is refused and not stored (one
    upload URL must not fill the store with documents no response names)."""
    create_command(admin, deployment)
    offer = agent.command()
    document = _result_document()
    first = httpx.put(offer["result_upload_url"], content=document, timeout=10)
    assert first.status_code == 200, first.text
    again = httpx.put(offer["result_upload_url"], content=document, timeout=10)
    assert again.status_code == 200, again.text
    ref = {key: first.json()[key] for key in ("sha256", "size")}
    assert {key: again.json()[key] for key in ("sha256", "size")} == ref
    other = _result_document()
    refused = httpx.put(offer["result_upload_url"], content=other, timeout=10)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("RESULT_ALREADY_UPLOADED", "body")
    assert error["details"] == {"sha256": ref["sha256"]}
    assert not _stored(commands_manager, other)
    receipt = agent.respond(offer, ok=True, result=None, result_ref=again.json())
    assert receipt["ok"] and receipt["state"] == "succeeded"


def test_an_empty_params_upload_stores_nothing(
    commands_manager: ManagerProcess, admin: ApiClient, deployment: Deployment
) -> None:
    refused = admin.post(
        "/v1/commands/payloads",
        params={"deployment": deployment.ref},
        content=b"",
        headers={"content-type": "application/json"},
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "body"
    assert not _stored(commands_manager, b"")
