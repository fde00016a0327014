"""The NATS subject of each event: transport naming, kept out of the events themselves (the core
knows what happened, not where it is published).

On `KPI_EVENTS`: `kpi.<noun>.<verb>.v<n>.<catalogue, unit list or key>.<unit>` ("_" where an event
names none), so a sync job can filter one catalogue or one unit. On `KPI_SCORES`:
`kpi-scores.changed.v1` and `kpi-scores.frozen.v1.<catalogue>`. The placeholder of a message the
relay could not publish (`kpi_core.events.EventWithheld`) goes to `kpi.event.withheld.v1._._` or
`kpi-scores.withheld.v1`: its own subject, since the original's may be the very thing refused.
"""

from __future__ import annotations

from kpi_core.events import DomainEvent
from kpi_core.score_events import ResultFrozen, ScoreEvent

EVENT_TYPE_PREFIX = "vn.kpi."
ROUTED_BY = ("catalogue_id", "peer_group_id", "key_id")  # the first an event has names its subject's group
WITHHELD_EVENT_SUBJECT = "kpi.event.withheld.v1._._"
WITHHELD_SCORE_SUBJECT = "kpi-scores.withheld.v1"


def event_subject(event: DomainEvent) -> str:
    kind, group_field, has_unit = _routing(type(event))
    group = str(getattr(event, group_field)) if group_field is not None else "_"
    unit = (getattr(event, "unit_id", None) if has_unit else None) or "_"
    return f"kpi.{kind}.{group}.{unit}"


_ROUTING: dict[type[DomainEvent], tuple[str, str | None, bool]] = {}


def _routing(event_type: type[DomainEvent]) -> tuple[str, str | None, bool]:
    """(the type's part of the subject, the field naming its group, whether it names a unit): fixed
    by the event's class, so found once per class (a set publishes thousands of one class)."""
    found = _ROUTING.get(event_type)
    if found is None:
        fields = event_type.model_fields
        group_field = next((name for name in ROUTED_BY if name in fields), None)
        kind = event_type.type.removeprefix(EVENT_TYPE_PREFIX)
        found = _ROUTING[event_type] = kind, group_field, "unit_id" in fields
    return found


def score_subject(event: ScoreEvent) -> str:
    if isinstance(event, ResultFrozen):
        return f"kpi-scores.frozen.v1.{event.catalogue_id}"
    return "kpi-scores.changed.v1"
