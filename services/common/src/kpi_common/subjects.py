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
    group = next((str(getattr(event, name)) for name in ROUTED_BY if hasattr(event, name)), "_")
    unit = getattr(event, "unit_id", None) or "_"
    return f"kpi.{event.type.removeprefix(EVENT_TYPE_PREFIX)}.{group}.{unit}"


def score_subject(event: ScoreEvent) -> str:
    if isinstance(event, ResultFrozen):
        return f"kpi-scores.frozen.v1.{event.catalogue_id}"
    return "kpi-scores.changed.v1"
