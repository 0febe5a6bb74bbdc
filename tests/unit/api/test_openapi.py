from __future__ import annotations

import json

from api.cli import openapi_document
from tests.paths import REPO_ROOT

COMMITTED = REPO_ROOT / "docs" / "api" / "openapi.json"


def test_openapi_document_is_committed_and_current() -> None:
    assert json.loads(COMMITTED.read_text()) == openapi_document(), (
        "docs/api/openapi.json is stale: smsflow api openapi > docs/api/openapi.json"
    )


def test_openapi_documents_the_error_codes_and_the_key() -> None:
    document = openapi_document()
    post = document["paths"]["/v1/messages"]["post"]
    assert {"202", "400", "401", "403", "413", "422", "429", "503"} <= set(post["responses"])
    assert "`RATE_LIMITED`" in post["responses"]["429"]["description"]
    assert post["security"] == [{"HTTPBearer": []}]
    assert "Idempotency-Key" in [p["name"] for p in post["parameters"]]
    message = document["components"]["schemas"]["MessageIn"]
    assert message["additionalProperties"] is False


def test_openapi_documents_the_inbound_route() -> None:
    get = openapi_document()["paths"]["/v1/inbound"]["get"]
    assert get["security"] == [{"HTTPBearer": []}]
    limit = next(p for p in get["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, 1000)
    assert {"since", "cursor"} <= {p["name"] for p in get["parameters"]}
    assert "`INVALID_CURSOR`" in get["responses"]["400"]["description"]
    page = get["responses"]["200"]["content"]["application/json"]["schema"]
    assert page == {"$ref": "#/components/schemas/InboundPage"}
