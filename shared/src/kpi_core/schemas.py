"""JSON Schemas of the public contracts: the catalogue format and every event type's envelope, on the
event stream and on the score stream (with the placeholder of a withheld event)."""

from __future__ import annotations

from typing import Any

from kpi_core.catalogue import Catalogue
from kpi_core.events import EVENT_TYPES, EventEnvelope, EventWithheld
from kpi_core.score_events import SCORE_EVENT_TYPES

# the placeholder a relay publishes in place of an event it cannot publish is on both streams
CONTRACTS: dict[str, type[Any]] = {**EVENT_TYPES, **SCORE_EVENT_TYPES, EventWithheld.type: EventWithheld}

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def catalogue_schema() -> dict[str, Any]:
    schema = Catalogue.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": "/v1/schemas/catalogue", **schema}


def event_schema(event_type: str) -> dict[str, Any]:
    """The CloudEvents envelope of one event type, with its `data` schema and fixed `type`."""
    data_schema = CONTRACTS[event_type].model_json_schema(mode="serialization")
    envelope = EventEnvelope.model_json_schema(mode="serialization")
    definitions = {**envelope.pop("$defs", {}), **data_schema.pop("$defs", {})}
    envelope["properties"]["type"] = {"const": event_type, "title": "Type"}
    envelope["properties"]["data"] = data_schema
    schema = {"$schema": SCHEMA_DIALECT, "$id": f"/v1/schemas/{event_type}", **envelope}
    if definitions:
        schema["$defs"] = definitions
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    return {"catalogue": catalogue_schema(), **{name: event_schema(name) for name in sorted(CONTRACTS)}}
