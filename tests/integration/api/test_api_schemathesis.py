"""schemathesis against the OpenAPI document, in-process on the ASGI app: no 5xx over at least
1,000 generated requests (valid and invalid), half of them with a real key and purpose, and no
contract failure: every answer's status, media type, headers and body as the document declares."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

# the responses as the OpenAPI declares them: status, media type, headers and body schema
CONTRACT = [status_code_conformance, content_type_conformance, response_headers_conformance,
            response_schema_conformance]

PER_OPERATION = 70


def test_no_server_errors(api_settings):
    from api.app import create_app

    app = create_app(api_settings, rate=1e6, burst=10**6, cache_ttl=0)
    access = app.state.consumer.access
    access.add_department("fuzzer", "Fuzzing department")
    key = access.issue_credential("fuzzer")["key"]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    sent, failures, contract = [0], [], []

    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=PER_OPERATION, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(mode), authed=st.booleans(), purposed=st.booleans())
            def run(case, authed, purposed, op):   # op passed at the call: @given refuses defaults
                if authed:
                    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
                if purposed and isinstance(case.query, dict):
                    case.query = {**case.query, "purpose": "DJ-SCJG-0003"}
                response = case.call()
                sent[0] += 1
                if response.status_code >= 500:
                    failures.append((op.label, response.status_code, response.text[:200]))
                try:
                    case.validate_response(response, checks=CONTRACT)
                except FailureGroup as exc:     # collected, reported below
                    contract.append((op.label, response.status_code, str(exc)[:300]))
                if response.status_code >= 400:
                    ctype = response.headers.get("content-type", [""])
                    ctype = ctype[0] if isinstance(ctype, list) else ctype
                    assert ctype.startswith("application/problem+json"), (op.label, response.status_code)
            try:
                run(op=op)
            except Unsatisfiable:       # no invalid input exists (an operation without parameters)
                pass
    assert not failures, failures[:5]
    assert not contract, contract[:5]
    assert sent[0] >= 1000, sent[0]
    from catalog.serving.audit import verify_chain
    assert verify_chain(app.state.consumer.engine).ok
