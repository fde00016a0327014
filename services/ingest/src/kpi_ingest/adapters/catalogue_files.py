"""Reading the official catalogues and unit lists bundled with kpi_core."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def _bundled(folder_name: str) -> list[dict[str, Any]]:
    folder = resources.files("kpi_core").joinpath(folder_name)
    documents = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            documents.append(yaml.safe_load(entry.read_text(encoding="utf-8")))
    return documents


def bundled_catalogue_documents() -> list[dict[str, Any]]:
    return _bundled("catalogues")


def bundled_peer_group_documents() -> list[dict[str, Any]]:
    return _bundled("unit_lists")
