"""The scope every score and report is asked for: a catalogue version, a period and a stage."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar


@dataclass(frozen=True)
class Scope:
    """Which scores: a catalogue version's, for a period, at a stage (self_assessment, verification,
    or published). Hashable, so a scope is itself the key of what is cached for it."""

    catalogue_id: str
    version: str
    period: int
    stage: str

    COLUMNS: ClassVar[tuple[str, ...]] = ("catalogue_id", "version", "period", "stage")  # as `columns()` names them

    def period_columns(self) -> dict[str, str | int]:
        """The catalogue version and period, named as the tables name their columns: what every stage
        of the period shares (its measurements, its workflow events, its publications)."""
        return {"catalogue_id": self.catalogue_id, "version": self.version, "period": self.period}

    def columns(self) -> dict[str, str | int]:
        """The whole scope, named as the tables name their columns, in their order."""
        return {**self.period_columns(), "stage": self.stage}

    def at_stage(self, stage: str) -> Scope:
        return replace(self, stage=stage)

    def previous(self) -> Scope:
        """The same catalogue version and stage, one period earlier."""
        return replace(self, period=self.period - 1)

    def following(self) -> Scope:
        """The same catalogue version and stage, one period later."""
        return replace(self, period=self.period + 1)
