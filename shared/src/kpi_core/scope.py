"""The scope every score and report is asked for: a catalogue version, a period and a stage."""

from __future__ import annotations

from typing import NamedTuple


class Scope(NamedTuple):
    """Which scores: a catalogue version's, for a period, at a stage (self_assessment, verification,
    or published). Hashable, so a scope is itself the key of what is cached for it; a named tuple,
    so hashing and comparing one (every lookup of a projection's batch does) costs what a tuple's
    does (a frozen dataclass's hash and equality run in Python: about 6 % of scoring's CPU)."""

    catalogue_id: str
    version: str
    period: int
    stage: str

    def period_columns(self) -> dict[str, str | int]:
        """The catalogue version and period, named as the tables name their columns: what every stage
        of the period shares (its measurements, its workflow events, its publications)."""
        return {"catalogue_id": self.catalogue_id, "version": self.version, "period": self.period}

    def columns(self) -> dict[str, str | int]:
        """The whole scope, named as the tables name their columns, in their order (`SCOPE_COLUMNS`)."""
        return {"catalogue_id": self.catalogue_id, "version": self.version, "period": self.period, "stage": self.stage}

    def at_stage(self, stage: str) -> Scope:
        return self._replace(stage=stage)

    def previous(self) -> Scope:
        """The same catalogue version and stage, one period earlier."""
        return self._replace(period=self.period - 1)

    def following(self) -> Scope:
        """The same catalogue version and stage, one period later."""
        return self._replace(period=self.period + 1)


SCOPE_COLUMNS: tuple[str, ...] = Scope._fields  # the columns naming a scope, in the tables' order
