from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_openapi_schema_generates_and_validates(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/campaigns/" in schema["paths"]
    assert "/api/v1/datasets/{id}/examples/" in schema["paths"]


def test_docs_pages_render(client, django_user_model):
    assert client.get("/api/schema/").status_code in (200, 401, 403)
    r = client.get("/api/docs/")
    assert r.status_code == 200
