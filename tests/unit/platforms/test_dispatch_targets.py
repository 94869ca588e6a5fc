"""Which function a command goes to (``resolve_target``), and what a large result becomes."""

from __future__ import annotations

import hashlib

import pytest

import alien
from alien.errors import Conflict, ValidationError
from alien.platforms.dispatch import Invocation, command_targets, resolve_target
from alien.protocol.command_messages import BlobRef, CommandResponse
from alien.stack.spec import Manifest


def _manifest(*with_commands: str, without: tuple[str, ...] = ()) -> Manifest:
    stack = alien.Stack("demo")
    for fid in with_commands:
        stack.add(
            alien.Function(fid).code(src=fid, entrypoint="app:app").commands_enabled(), "live"
        )
    for fid in without:
        stack.add(alien.Function(fid).code(src=fid, entrypoint="app:app"), "live")
    return stack.validate()


def test_the_one_function_with_commands_is_implied() -> None:
    manifest = _manifest("api", without=("worker",))
    assert command_targets(manifest) == ["api"]
    assert resolve_target(manifest, None) == "api"
    assert resolve_target(manifest.model_dump(mode="json"), "api") == "api"


# The codes are the manager's (docs/ERRORS.md): `alien dev` and a deployment answer alike.


def test_several_functions_with_commands_need_a_target() -> None:
    manifest = _manifest("b", "a")
    with pytest.raises(ValidationError) as info:
        resolve_target(manifest, None)
    assert info.value.code == "TARGET_REQUIRED" and info.value.field == "target"
    assert "a, b" in info.value.message and info.value.details["targets"] == ["a", "b"]
    assert resolve_target(manifest, "b") == "b"


def test_no_function_with_commands_is_no_command_target() -> None:
    with pytest.raises(Conflict) as info:
        resolve_target(_manifest(without=("api",)), None)
    assert info.value.code == "NO_COMMAND_TARGET" and info.value.status == 409


def test_a_target_without_commands_is_ambiguous_and_lists_the_candidates() -> None:
    with pytest.raises(ValidationError) as info:
        resolve_target(_manifest("api", without=("worker",)), "worker")
    assert info.value.code == "TARGET_AMBIGUOUS" and info.value.field == "target"
    assert "(those are: api)" in info.value.message and info.value.details["targets"] == ["api"]


async def test_a_large_result_document_is_stored_through_the_offload_hook() -> None:
    document = b'"' + b"x" * 10 + b'"'
    invocation = Invocation("cmd_1", "lse_1", document=document)
    stored: list[bytes] = []

    async def offload(data: bytes) -> BlobRef:
        stored.append(data)
        digest = hashlib.sha256(data).hexdigest()
        return BlobRef(url="https://blobs.example/r", size=len(data), sha256=digest)

    response = await invocation.finish(offload)
    assert stored == [document]
    assert response.ok and response.result_ref is not None and response.result is None
    refused = await invocation.finish(None)
    assert refused.error is not None and refused.error.code == "HANDLER_ERROR"
    done = CommandResponse.success("cmd_1", "lse_1", 1)
    assert await Invocation("cmd_1", "lse_1", response=done).finish(None) is done
    with pytest.raises(ValueError):
        Invocation("cmd_1", "lse_1")
