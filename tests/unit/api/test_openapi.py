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
