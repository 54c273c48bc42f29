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
    assert "/api/v1/campaigns/{campaign_id}/scores/" in schema["paths"]
    pair = schema["paths"]["/api/v1/campaigns/{campaign_id}/edits/{edit_id}/"]["get"]
    assert {"status", "modality", "author", "target_label", "fooled"} <= {
        p["name"] for p in pair["parameters"]
    }


def test_docs_pages_render_from_local_assets(client):
    assert client.get("/api/schema/").status_code == 200
    r = client.get("/api/docs/")
    assert r.status_code == 200
    page = r.content.decode()
    # The UI must work offline: its scripts come from this server, never a CDN.
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page
    bundle = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assert bundle in page
    assert client.get(bundle).status_code == 200
