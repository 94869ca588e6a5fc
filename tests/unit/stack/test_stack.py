"""The builder API and ``Stack.validate``: every mistake the brief lists is reported with the
field naming the resource, and all of them at once."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

import alien
from alien.errors import StackError
from alien.stack import Lifecycle, StorageEvent


def problems_of(stack: alien.Stack, app_dir: Path | None = None) -> dict[str, str]:
    with pytest.raises(StackError) as caught:
        stack.validate(app_dir)
    listed = caught.value.details["problems"]
    assert caught.value.field == listed[0]["field"]
    return {p["field"]: p["message"] for p in listed}


def fn(name: str = "api") -> alien.Function:
    return alien.Function(name).code(src=name, entrypoint="app:app")


def test_valid_stack_validates_with_its_app_dir(stack: alien.Stack, app_dir: Path) -> None:
    manifest = stack.validate(app_dir)
    assert manifest.name == "my-app"
    assert [r.id for r in manifest.resources] == ["api", "cache", "credentials", "data", "tasks"]


def test_builders_accept_enums_ids_and_paths() -> None:
    data = alien.Storage("data")
    api = (
        alien.Function("api")
        .code(src=PurePosixPath("src") / "api", entrypoint="pkg.main:app")
        .link("data")
        .ingress(alien.Ingress.PUBLIC)
        .on_storage("data", events="delete")
        .on_queue("jobs")
    )
    st = alien.Stack("s").add(api, Lifecycle.LIVE).add(data, "frozen")
    st.add(alien.Queue("jobs", visibility_timeout=120), "live")
    manifest = st.validate()
    config = manifest.function("api").config
    assert config.code.src == "src/api"
    assert config.ingress == "public"
    assert config.links == ("data", "jobs")  # the queue trigger implies the link
    assert config.triggers[1].events == (StorageEvent.DELETE,)
    assert manifest.resource("jobs").config.visibility_timeout == 120


def test_bad_ids() -> None:
    st = alien.Stack("My App").add(alien.Storage("Data"), "frozen").add(alien.Kv("k-"), "live")
    problems = problems_of(st)
    assert set(problems) == {"name", "resources[0].id", "resources[1].id"}
    assert "lowercase letters" in problems["resources[0].id"]


def test_duplicate_ids() -> None:
    st = alien.Stack("s").add(alien.Storage("data"), "frozen").add(alien.Kv("data"), "live")
    assert problems_of(st) == {
        "resources.data": "2 resources have id 'data': ids must be unique in a stack"
    }


def test_links_and_triggers_to_missing_resources() -> None:
    api = fn().link(alien.Vault("secrets")).on_queue(alien.Queue("jobs")).on_storage("files")
    problems = problems_of(alien.Stack("s").add(api, "live"))
    assert set(problems) == {"resources.api.links", "resources.api.triggers"}
    assert "link to 'secrets', which is not in the stack" in problems["resources.api.links"]
    with pytest.raises(StackError) as caught:
        alien.Stack("s").add(api, "live").validate()
    messages = [p["message"] for p in caught.value.details["problems"]]
    assert (
        "queue trigger names 'jobs', which is not in the stack: add a queue named 'jobs' "
        "to the stack" in messages
    )
    assert any("storage trigger names 'files'" in m for m in messages)


def test_trigger_on_wrong_kind_and_link_to_function() -> None:
    data = alien.Storage("data")
    worker = fn("worker")
    api = fn().on_queue(data).link(worker)
    st = alien.Stack("s").add(api, "live").add(data, "frozen").add(worker, "live")
    problems = problems_of(st)
    assert problems["resources.api.triggers"] == "queue trigger names 'data', which is a storage"
    assert "functions can link storage, vault, kv and queue" in problems["resources.api.links"]


def test_bad_cron_and_duplicate_cron_names() -> None:
    st = alien.Stack("s").add(fn().schedule("nightly", "0 25 * * *"), "live")
    assert set(problems_of(st)) == {"resources.api.triggers[0].schedule"}
    st = alien.Stack("s").add(
        fn().schedule("nightly", "0 3 * * *").schedule("nightly", "0 4 * * *"), "live"
    )
    assert problems_of(st) == {
        "resources.api.triggers": "more than one cron trigger named 'nightly': keep one"
    }


def test_bad_entrypoint_and_missing_code() -> None:
    st = alien.Stack("s").add(alien.Function("a").code("a", "app.py"), "live")
    st.add(alien.Function("b"), "live")
    problems = problems_of(st)
    assert set(problems) == {"resources.a.code.entrypoint", "resources.b.code"}
    assert "module.path:attribute" in problems["resources.a.code.entrypoint"]
    assert problems["resources.b.code"].startswith("a function needs code")


def test_bad_lifecycle_ingress_and_events() -> None:
    api = fn().ingress("internet").on_storage("data", events=("put", "modify"))
    st = alien.Stack("s").add(api, "thawed").add(alien.Storage("data"), "frozen")
    problems = problems_of(st)
    assert problems["resources.api.lifecycle"] == "lifecycle must be 'frozen' or 'live'"
    assert problems["resources.api.ingress"] == "ingress must be 'private' or 'public'"
    assert "resources.api.triggers[0].events[1]" in problems


def test_add_refuses_non_resources() -> None:
    with pytest.raises(StackError, match="not str") as caught:
        alien.Stack("s").add("data", "live")  # type: ignore[arg-type]
    assert caught.value.field == "resources"


@pytest.mark.parametrize(("src", "reason"), [("../api", "'..'"), ("/srv/api", "absolute")])
def test_code_src_escaping_the_app_dir(src: str, reason: str, app_dir: Path) -> None:
    st = alien.Stack("s").add(alien.Function("api").code(src, "app:app"), "live")
    problems = problems_of(st, app_dir)
    assert list(problems) == ["resources.api.code.src"]
    assert reason in problems["resources.api.code.src"]


def test_missing_code_dir_only_checked_with_an_app_dir(tmp_path: Path) -> None:
    st = alien.Stack("s").add(fn("web"), "live")
    st.validate()  # no app dir: syntax only
    problems = problems_of(st, tmp_path)
    assert "code directory 'web' does not exist" in problems["resources.web.code.src"]
    (tmp_path / "web").write_text("not a directory")
    assert "is a file" in problems_of(st, tmp_path)["resources.web.code.src"]


def test_code_dir_symlink_out_of_the_app_dir(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    app = tmp_path / "app"
    app.mkdir()
    os.symlink(outside, app / "api")
    problems = problems_of(alien.Stack("s").add(fn(), "live"), app)
    assert "leads outside the app directory" in problems["resources.api.code.src"]


def test_all_problems_reported_at_once(app_dir: Path) -> None:
    st = (
        alien.Stack("s")
        .add(alien.Function("good").code("missing", "app:app").link("ghost"), "live")
        .add(alien.Function("bad").code("api", "nope"), "live")
        .add(alien.Queue("q", visibility_timeout=0), "live")
        .add(alien.Queue("q"), "live")
    )
    with pytest.raises(StackError) as caught:
        st.validate(app_dir)
    fields = [p["field"] for p in caught.value.details["problems"]]
    assert fields == [
        "resources.bad.code.entrypoint",
        "resources.q.visibility_timeout",
        "resources.q",
        "resources.good.links",
        "resources.good.code.src",
    ]
    assert caught.value.message.startswith("stack 's' has 5 problems: resources.bad.code")
    assert "\n" not in caught.value.message
