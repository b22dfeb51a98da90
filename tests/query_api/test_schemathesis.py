"""Schemathesis against a real `chat-archive serve`, from the OpenAPI document it serves: no 500s,
and every answer has a documented status, content type and schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from .serving import start_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    served = start_serve(tmp_path_factory.mktemp("schemathesis"), "streams_per_client = 64\n")
    yield served
    served.stop()


def test_the_served_api_keeps_to_its_document(served):
    # A follow stream is open until the token is revoked: it is fuzzed in-process (test_openapi.py).
    schema = schemathesis.openapi.from_url(served.url + "/api/v1/openapi.json").exclude(path="/api/v1/events")
    headers = {"Authorization": f"Bearer {served.tokens['compliance']}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(base_url=served.url, headers=headers, checks=checks, timeout=30)

        check()
    assert served.healthy()
