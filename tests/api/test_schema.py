"""The OpenAPI schema and its documentation page."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from rest_framework.test import APIClient

SCHEMA_URL = "/api/schema/"
DOCS_URL = "/api/docs/"


def test_schema_validates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    # --fail-on-warn: a view drf-spectacular cannot document fails the build.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3")


@pytest.mark.django_db
def test_schema_documents_the_firm_header_and_the_errors() -> None:
    response = APIClient().get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert {"ErrorResponse", "ApiError"} <= set(schema["components"]["schemas"])
    firm_get = schema["paths"]["/api/v1/firm/"]["get"]
    headers = [p for p in firm_get["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in headers] == ["X-Firm"]
    for code in ("400", "401", "403", "429"):
        ref = firm_get["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")
    update = schema["components"]["schemas"]["PatchedFirmUpdateInputRequest"]
    assert update["additionalProperties"] is False, "unknown fields are refused: say so"
    token = schema["paths"]["/api/v1/auth/token/"]["post"]
    assert "security" not in token or token["security"] in ([], [{}])


@pytest.mark.django_db
def test_docs_are_served_from_local_static_files_only() -> None:
    response = APIClient().get(DOCS_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    hosts = {urlsplit(url).netloc for url in re.findall(r"(?:https?:)?//[^\s\"'<>)]+", html)}
    assert hosts <= {"testserver"}, f"the docs page reaches out to {sorted(hosts)}"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    static = [a for a in assets if a.startswith("/static/")]
    assert static, "the Swagger UI assets come from /static/"
    for asset in static:
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a local static file"
