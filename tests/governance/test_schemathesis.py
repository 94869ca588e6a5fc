"""The API keeps its published contract: schemathesis against the LIVE manager's ``/openapi.json``.

Every operation of the spec is called with generated input, authenticated as an admin, and each
answer must be no server error and match what the spec says of that operation: a documented
status code, the documented content type and a body that validates against the documented
schema (errors included: routes declare their error responses, so the spec is honest about
them). The default run is bounded (a few examples per operation, SQLite); ``-m slow`` runs a
larger one on SQLite and PostgreSQL. Generation is derandomized, so a run is repeatable.

The manager is given something to find first (a group, a deployment with its release), so
generated references sometimes hit real resources rather than only ever answering 404.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from support.databases import DATABASES, database_for
from support.manager import ManagerProcess
from support.names import unique

DEFAULT_EXAMPLES = 4
SLOW_EXAMPLES = 60
REQUEST_TIMEOUT = 20.0

#: Every check but one: "schema-valid input must be accepted" does not hold for this API, whose
#: rules across fields (``params`` or ``params_ref``, a ``wait`` within the configured maximum,
#: a deployment that exists) are checked by the route and answered 422 ``VALIDATION_ERROR`` —
#: a documented answer, validated like any other by the conformance checks.
CONFIG = schemathesis.Config.from_dict({"checks": {"positive_data_acceptance": {"enabled": False}}})


@pytest.fixture(scope="module")
def live_manager(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    assert_clean_log: Callable[[ManagerProcess], None],
) -> Iterator[ManagerProcess]:
    with database_for(getattr(request, "param", "sqlite")) as url:
        manager = ManagerProcess(tmp_path_factory.mktemp("schemathesis"), database_url=url)
        manager.start()
        with manager.client() as admin:
            group = admin.create_group(unique("st"))["name"]
            onboarded = admin.onboard(admin.create_group_token(group), unique("dep"))
            admin.create_release(
                {"type": "deployments", "deployments": [onboarded["deployment"]["id"]]}
            )
        try:
            yield manager
        finally:
            manager.stop()
        assert_clean_log(manager)


def _check_every_operation(manager: ManagerProcess, examples: int) -> None:
    """Each operation of the live spec with ``examples`` generated cases; every failure of
    every operation is reported together."""
    schema = schemathesis.openapi.from_url(f"{manager.url}/openapi.json", config=CONFIG)
    headers = {"Authorization": f"Bearer {manager.admin_key}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, timeout=REQUEST_TIMEOUT)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # one failure must not hide the others
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_the_api_keeps_its_contract(live_manager: ManagerProcess) -> None:
    _check_every_operation(live_manager, DEFAULT_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("live_manager", DATABASES, indirect=True)
def test_the_api_keeps_its_contract_at_length(live_manager: ManagerProcess) -> None:
    _check_every_operation(live_manager, SLOW_EXAMPLES)


def test_the_spec_is_served_without_a_token(live_manager: ManagerProcess) -> None:
    """What schemathesis reads is the live spec, public like the API's documentation."""
    with live_manager.client("") as anonymous:
        response = anonymous.get("/openapi.json")
    assert response.status_code == 200
    assert "/v1/api-keys" in response.json()["paths"]
