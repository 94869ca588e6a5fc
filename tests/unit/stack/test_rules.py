"""Single-value rules: each accepts the canonical forms and refuses the rest with a hint."""

from __future__ import annotations

import pytest

from alien.stack import rules


@pytest.mark.parametrize("value", ["a", "data", "my-app", "a1", "x" * 63, "a-b-c9"])
def test_resource_id_accepts(value: str) -> None:
    assert rules.check_resource_id(value) == value


@pytest.mark.parametrize(
    "value", ["", "Data", "1data", "-data", "data-", "my_app", "a.b", "x" * 64, "dätä", "a\n"]
)
def test_resource_id_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits and '-'"):
        rules.check_resource_id(value)


@pytest.mark.parametrize("value", ["nightly", "clean_up", "every-5-min", "a"])
def test_trigger_name_accepts(value: str) -> None:
    assert rules.check_trigger_name(value) == value


@pytest.mark.parametrize("value", ["", "Nightly", "_x", "x_", "x-", "a b"])
def test_trigger_name_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="not a valid trigger name"):
        rules.check_trigger_name(value)


@pytest.mark.parametrize("value", ["app:app", "pkg.server:app", "main:factory.app", "_m:_a"])
def test_entrypoint_accepts(value: str) -> None:
    assert rules.check_entrypoint(value) == value


@pytest.mark.parametrize(
    "value", ["app", "app:", ":app", "app.py:app", "a:b:c", "a-b:app", "app:app()", "1a:app", "x"]
)
def test_entrypoint_refuses(value: str) -> None:
    with pytest.raises(ValueError, match=r"module\.path:attribute"):
        rules.check_entrypoint(value)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("api", "api"),
        ("./api", "api"),
        ("api/", "api"),
        ("src//api/./v1", "src/api/v1"),
        (".", "."),
    ],
)
def test_code_src_is_canonical(value: str, canonical: str) -> None:
    assert rules.check_code_src(value) == canonical


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "1-1024 characters"),
        ("/srv/api", "absolute"),
        ("../api", r"'\.\.'"),
        ("api/../../x", r"'\.\.'"),
        ("api\\win", "control characters"),
        ("api\x00", "control characters"),
        ("a" * 1025, "1-1024 characters"),
    ],
)
def test_code_src_refuses(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        rules.check_code_src(value)


def test_env_names() -> None:
    assert rules.check_env_name("LOG_LEVEL") == "LOG_LEVEL"
    for bad in ("1X", "A-B", "", "A B"):
        with pytest.raises(ValueError, match="env name"):
            rules.check_env_name(bad)
    with pytest.raises(ValueError, match="reserved"):
        rules.check_env_name("ALIEN_BINDINGS")
    with pytest.raises(ValueError, match="reserved"):
        rules.check_env_name("alien_port")


def test_env_value_refuses_nul_without_quoting_it() -> None:
    with pytest.raises(ValueError) as caught:
        rules.check_env_value("s3cr3t\x00")
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("0 3 * * *", "0 3 * * *"),
        ("  */5   * * * 1-5 ", "*/5 * * * 1-5"),
        ("* * * * * *", "* * * * * *"),  # 6 fields: seconds last, fires every second
        ("*/10 * * * * 30", "*/10 * * * * 30"),
        ("0 9 * * MON", "0 9 * * MON"),
    ],
)
def test_cron_accepts_5_and_6_fields(value: str, canonical: str) -> None:
    assert rules.check_cron(value) == canonical


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("@daily", "1 fields"),
        ("0 3 * *", "4 fields"),
        ("0 0 1 1 * * 2030", "7 fields"),
        ("61 * * * *", "invalid or can never fire"),
        ("0 0 31 2 *", "invalid or can never fire"),
        ("a b c d e", "invalid or can never fire"),
        ("", "0 fields"),
        ("* " * 200, "longer than"),
    ],
)
def test_cron_refuses(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        rules.check_cron(value)


def test_show_truncates_and_escapes() -> None:
    shown = rules.show("line\n" * 50)
    assert "\n" not in shown
    assert len(shown) <= 40
