"""Flag values and the manager's refusals of them, said in the command line's terms
(``alien.cli.options``): the flag the user typed, the range a value must be in."""

from __future__ import annotations

import pytest

from alien.cli.options import MAX_SESSION_SECONDS, naming_flags, parse_duration
from alien.errors import AlienError, Forbidden, NotFound, ValidationError
from alien.manager.services.debug_policies import MAX_TTL_LIMIT


def test_the_cli_knows_the_managers_longest_session() -> None:
    assert MAX_SESSION_SECONDS == MAX_TTL_LIMIT


@pytest.mark.parametrize(
    ("text", "seconds"), [("1", 1), ("90s", 90), ("30m", 1800), (" 2h ", 7200), ("12h", 43200)]
)
def test_a_duration_in_range(text: str, seconds: int) -> None:
    assert parse_duration(text, "--for") == seconds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0s", "'0s' is too short: give 1s to 12h"),
        ("0", "'0' is too short: give 1s to 12h"),
        ("1d", "'1d' is too long: give 1s to 12h"),
        ("soon", "'soon' is not a duration (like 90s, 30m, 2h)"),
        ("-5m", "'-5m' is not a duration (like 90s, 30m, 2h)"),
    ],
)
def test_a_refused_duration_names_the_flag(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_duration(text, "--for")
    assert (refused.value.message, refused.value.field) == (says, "--for")


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            ValidationError(
                "invalid request at 'ttl_seconds': Input should be less than or equal to 43200",
                field="ttl_seconds",
            ),
            "invalid --ttl: Input should be less than or equal to 43200",
        ),
        (
            Forbidden(
                "ttl_seconds 7200 is over the maximum of the policy: 3600", field="ttl_seconds"
            ),
            "--ttl 7200 is over the maximum of the policy: 3600",
        ),
        (NotFound("no release 'rel_x'", field="release"), "no release 'rel_x'"),
    ],
)
def test_a_refusal_of_an_api_field_names_the_flag(error: AlienError, says: str) -> None:
    with (
        pytest.raises(AlienError) as refused,
        naming_flags(ttl_seconds="--ttl", release="--release"),
    ):
        raise error
    assert refused.value.message == says
    assert refused.value.field in ("--ttl", "--release")
    assert refused.value.code == error.code


def test_other_refusals_pass_unchanged() -> None:
    error = ValidationError("no deployment 'x'", field="deployment")
    with pytest.raises(ValidationError) as refused, naming_flags(ttl_seconds="--ttl"):
        raise error
    assert (refused.value.message, refused.value.field) == ("no deployment 'x'", "deployment")
