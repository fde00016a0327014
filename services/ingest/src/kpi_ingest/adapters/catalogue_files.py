"""Reading the official catalogue files bundled with kpi_core."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def bundled_catalogue_documents() -> list[dict[str, Any]]:
    folder = resources.files("kpi_core").joinpath("catalogues")
    documents = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            documents.append(yaml.safe_load(entry.read_text(encoding="utf-8")))
    return documents
