"""Ranking units from high to low; ties share a rank (1, 2, 2, 4), shown as "rank/N"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Ranked:
    unit: str
    rank: int
    of: int
    total: Fraction

    @property
    def label(self) -> str:
        return f"{self.rank}/{self.of}"


def rank_units(totals: Mapping[str, Fraction]) -> list[Ranked]:
    """Competition ranking on exact totals; equal totals are ordered by unit id for stable output."""
    ordered = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    ranked: list[Ranked] = []
    for position, (unit, total) in enumerate(ordered, start=1):
        rank = ranked[-1].rank if ranked and ranked[-1].total == total else position
        ranked.append(Ranked(unit, rank, len(ordered), total))
    return ranked
