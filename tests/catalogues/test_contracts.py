"""Every bundled catalogue is valid, matches its file name and the published JSON Schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from kpi_core.catalogue import Catalogue
from kpi_core.schemas import all_schemas
from tests.catalogues.conftest import bundled_documents
from tests.conftest import ROOT

NAMES = sorted(bundled_documents())


def test_the_published_schema_files_match_the_code() -> None:
    for name, schema in all_schemas().items():
        written = json.loads((ROOT / "docs" / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8"))
        assert written == json.loads(json.dumps(schema)), f"run `kpi-ledger schemas` to regenerate {name}"


@pytest.mark.parametrize("name", NAMES)
def test_a_bundled_catalogue_is_named_after_its_id_and_version(name: str, catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues[name]
    assert name == f"{catalogue.id}@{catalogue.version}"


@pytest.mark.parametrize("name", NAMES)
def test_a_bundled_catalogue_validates_against_the_published_schema(name: str, documents: dict[str, Any]) -> None:
    jsonschema.validate(json.loads(json.dumps(documents[name], default=str)), all_schemas()["catalogue"])


@pytest.mark.parametrize("name", NAMES)
def test_every_node_has_a_vietnamese_and_an_english_name(name: str, catalogues: dict[str, Catalogue]) -> None:
    missing = [node.code for node in catalogues[name].nodes if not node.name_vi or not node.name_en]
    assert missing == []


@pytest.mark.parametrize("name", NAMES)
def test_every_recorded_defect_names_a_node_of_the_catalogue(name: str, catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues[name]
    unknown = [defect.node for defect in catalogue.defects if defect.node and catalogue.node(defect.node) is None]
    assert unknown == []
