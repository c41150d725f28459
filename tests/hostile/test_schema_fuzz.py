"""Schemathesis against the live app's own OpenAPI schema, as an admin: whatever it
sends to any operation, valid or not, the answer is never a 5xx. Bounded and
derandomized, so CI sees the same examples every run. The upload is left out (the
corpus covers it). Driven from one test: the plugin's ``from_fixture`` does not work
with this pytest."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.openapi import from_url

from instance import LiveInstance

EXAMPLES_PER_OPERATION = 25
AnyOperation = APIOperation[Any, Any, Any, Any]


def fuzz(operation: AnyOperation, mode: GenerationMode, instance: LiveInstance) -> None:
    headers = {"Authorization": f"Bearer {instance.token('fuzz-admin@example.com', admin=True)}"}

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def no_server_error(case: Case[AnyOperation]) -> None:
        response = case.call(base_url=instance.url, headers=headers, timeout=10)
        case.validate_response(response, checks=[not_a_server_error])

    try:
        no_server_error()
    except Unsatisfiable:  # an operation without parameters has no invalid form
        assert mode is GenerationMode.NEGATIVE


# SQLite only: a minute per database, and the corpus covers PostgreSQL's own refusals.
@pytest.mark.parametrize("hostile", ["sqlite"], indirect=True)
def test_no_request_near_the_schema_is_a_server_error(hostile: LiveInstance) -> None:
    schema = from_url(f"{hostile.url}/openapi.json").exclude(method="POST", path="/api/v1/videos")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) > 10
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, hostile)
