"""The official catalogues as bundled with kpi_core, parsed once per test session."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml

from kpi_core.catalogue import Catalogue, parse_catalogue


def bundled_documents() -> dict[str, dict[str, Any]]:
    folder = resources.files("kpi_core").joinpath("catalogues")
    return {
        entry.name.removesuffix(".yaml"): yaml.safe_load(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


@pytest.fixture(scope="session")
def documents() -> dict[str, dict[str, Any]]:
    return bundled_documents()


@pytest.fixture(scope="session")
def catalogues(documents: dict[str, dict[str, Any]]) -> dict[str, Catalogue]:
    return {name: parse_catalogue(document) for name, document in documents.items()}
