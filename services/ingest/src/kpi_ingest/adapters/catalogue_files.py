"""Reading the official catalogues and unit lists bundled with kpi_core."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

# libyaml's parser (bundled with PyYAML's wheels) reads the bundled files ten times faster than the
# pure-Python one, the same documents: ingest parses them at every start
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _bundled(folder_name: str) -> list[dict[str, Any]]:
    folder = resources.files("kpi_core").joinpath(folder_name)
    documents = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            documents.append(yaml.load(entry.read_text(encoding="utf-8"), Loader=SAFE_LOADER))
    return documents


def bundled_catalogue_documents() -> list[dict[str, Any]]:
    return _bundled("catalogues")


def bundled_peer_group_documents() -> list[dict[str, Any]]:
    return _bundled("unit_lists")
