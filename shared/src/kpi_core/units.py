"""The unit registry: who is ranked. Units are data, like catalogues, grouped in peer groups.

A peer group (provinces, HCMC districts, ...) lists its units with the dates they are valid for
and the units they succeed (a merger, a rename). A catalogue names its peer group; the units of a
period are those valid on the period's reference date (the end of the year unless the catalogue
says otherwise). A unit created by a merger is a new unit with predecessors, never a reused id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import date
from functools import cached_property, lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

UNITS_FORMAT = "kpi-ledger.units/v1"
UNIT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
UnitKind = Literal["province", "centrally_run_city", "city_department", "district", "county", "city"]


Relation = Literal["self", "predecessor", "successor"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UnitSource(_Model):
    document: str
    date: str | None = None
    issuer: str | None = None
    url: str | None = None
    notes: str | None = None


class Unit(_Model):
    id: str = Field(pattern=UNIT_ID_PATTERN, max_length=100)
    name_vi: str = Field(min_length=1)
    name_en: str | None = None
    code: str | None = None
    kind: UnitKind
    valid_from: date | None = None
    valid_to: date | None = None
    predecessors: tuple[str, ...] = ()
    note: str | None = None

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day <= self.valid_to)


class PeerGroup(_Model):
    format: Literal["kpi-ledger.units/v1"] = "kpi-ledger.units/v1"
    id: str = Field(pattern=UNIT_ID_PATTERN, max_length=100)
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=50)
    title_vi: str
    title_en: str | None = None
    sources: tuple[UnitSource, ...] = Field(min_length=1)
    notes: str | None = None
    units: tuple[Unit, ...]

    @cached_property
    def units_by_id(self) -> dict[str, Unit]:
        return {unit.id: unit for unit in self.units}

    def unit(self, unit_id: str) -> Unit | None:
        return self.units_by_id.get(unit_id)

    def members(self, day: date) -> tuple[Unit, ...]:
        """The units valid on a day, in the order the list gives them."""
        return tuple(unit for unit in self.units if unit.valid_on(day))

    def predecessors(self, unit_id: str) -> tuple[Unit, ...]:
        """Every unit this one succeeds, directly or through earlier successions, nearest first."""
        found: list[Unit] = []
        queue = list(self.units_by_id[unit_id].predecessors) if unit_id in self.units_by_id else []
        while queue:
            earlier = self.units_by_id[queue.pop(0)]
            if earlier not in found:
                found.append(earlier)
                queue.extend(earlier.predecessors)
        return tuple(found)

    def successors(self, unit_id: str) -> tuple[Unit, ...]:
        return tuple(unit for unit in self.units if unit_id in unit.predecessors)

    def standing_for(self, unit_id: str, day: date) -> tuple[tuple[Unit, Relation], ...]:
        """Who carries a unit's line on a day: the unit itself while it is valid; before it existed,
        the predecessors valid then; after it ended, its successors. Never a blend of them: each
        keeps its own figures, so a trend across a merger is read, not guessed."""
        unit = self.unit(unit_id)
        if unit is None:
            return ()
        if unit.valid_on(day):
            return ((unit, "self"),)
        earlier = unit.valid_from is not None and day < unit.valid_from
        relation: Relation = "predecessor" if earlier else "successor"
        found: list[Unit] = []
        seen = {unit_id}
        queue = list(unit.predecessors) if earlier else [later.id for later in self.successors(unit_id)]
        while queue:
            candidate = self.units_by_id[queue.pop(0)]
            if candidate.id in seen:
                continue
            seen.add(candidate.id)
            if candidate.valid_on(day):
                found.append(candidate)
            else:
                queue.extend(candidate.predecessors if earlier else [u.id for u in self.successors(candidate.id)])
        return tuple((member, relation) for member in found)

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def content_hash(self) -> str:
        canonical = json.dumps(self.document(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class PeerGroupInvalid(ValueError):
    """A unit list that cannot be accepted; `defects` names every problem."""

    def __init__(self, label: str, defects: list[str]) -> None:
        self.defects = defects
        super().__init__(f"peer group {label} is invalid: " + "; ".join(defects))


def parse_peer_group(data: Mapping[str, Any]) -> PeerGroup:
    label = f"{data.get('id', '?')}@{data.get('version', '?')}"
    try:
        group = PeerGroup.model_validate(data)
    except ValidationError as error:
        raise PeerGroupInvalid(label, [_describe(err) for err in error.errors()]) from None
    defects = list(_defects(group))
    if defects:
        raise PeerGroupInvalid(label, defects)
    return group


def _describe(err: Any) -> str:
    return ".".join(str(part) for part in err["loc"]) + f": {err['msg']}"


def _defects(group: PeerGroup) -> Iterator[str]:
    seen: set[str] = set()
    for unit in group.units:
        if unit.id in seen:
            yield f"unit {unit.id}: duplicate id"
        seen.add(unit.id)
        if unit.valid_from and unit.valid_to and unit.valid_from > unit.valid_to:
            yield f"unit {unit.id}: valid_from is after valid_to"
    for unit in group.units:
        for earlier_id in unit.predecessors:
            earlier = group.unit(earlier_id)
            if earlier is None:
                yield f"unit {unit.id}: predecessor {earlier_id} is not in the list"
            elif earlier_id == unit.id:
                yield f"unit {unit.id}: a unit cannot succeed itself"
            elif unit.valid_from is None or earlier.valid_to is None or earlier.valid_to >= unit.valid_from:
                yield f"unit {unit.id}: predecessor {earlier_id} must end before its successor starts"


@lru_cache(maxsize=256)
def reference_date(period: int, reference_day: str = "12-31") -> date:
    """The day a period's units are read at: `MM-DD` of the period's year (asked once per row of a set)."""
    month, day = (int(part) for part in reference_day.split("-"))
    return date(period, month, day)


class UnitRegistry:
    """The registered peer groups, the latest version of each."""

    def __init__(self, groups: Mapping[str, PeerGroup] | None = None) -> None:
        self.groups: dict[str, PeerGroup] = dict(groups or {})

    def with_group(self, group: PeerGroup) -> UnitRegistry:
        return UnitRegistry({**self.groups, group.id: group})

    def group(self, peer_group: str) -> PeerGroup | None:
        return self.groups.get(peer_group)

    def members(self, peer_group: str, period: int, reference_day: str = "12-31") -> tuple[Unit, ...]:
        group = self.groups.get(peer_group)
        return group.members(reference_date(period, reference_day)) if group else ()

    def standing_for(
        self, peer_group: str, unit_id: str, period: int, reference_day: str = "12-31"
    ) -> tuple[tuple[Unit, Relation], ...]:
        group = self.groups.get(peer_group)
        return group.standing_for(unit_id, reference_date(period, reference_day)) if group else ()

    def unit(self, unit_id: str) -> Unit | None:
        """A unit by id in any peer group (a unit listed in several groups has the same entry in each)."""
        return next((group.unit(unit_id) for group in self.groups.values() if group.unit(unit_id)), None)

    def membership_error(self, peer_group: str, period: int, unit_id: str, reference_day: str = "12-31") -> str | None:
        """Why a unit cannot be assessed in a peer group and period, or None when it can."""
        group = self.groups.get(peer_group)
        if group is None:
            return f"the peer group {peer_group} is not registered"
        day = reference_date(period, reference_day)
        unit = group.unit(unit_id)
        if unit is not None and unit.valid_on(day):
            return None
        members = group.members(day)
        shown = ", ".join(member.id for member in members[:5]) + (", ..." if len(members) > 5 else "")
        if unit is None:
            return f"{unit_id} is not a unit of the peer group {peer_group} ({len(members)} units in {period}: {shown})"
        successors = ", ".join(successor.id for successor in group.successors(unit_id))
        return (
            f"{unit_id} ({unit.name_vi}) is not a unit of {peer_group} on {day.isoformat()}"
            + (f"; its successor is {successors}" if successors else "")
            + f" ({len(members)} units in {period}: {shown})"
        )
