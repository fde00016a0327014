"""Ranking units from high to low; ties share a rank (1, 2, 2, 4), shown as "rank/N"."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from kpi_core.events import RankedUnit, RankMove
from kpi_core.scoring import display_points


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


def frozen_ranking(
    totals: Mapping[str, Fraction], pillars: Mapping[str, Mapping[str, Fraction]], pillar_codes: Sequence[str]
) -> tuple[RankedUnit, ...]:
    """A ranking as a publication records it: ranks on exact totals, points shown to 0.01."""
    return tuple(
        RankedUnit(
            unit_id=ranked.unit,
            rank=ranked.rank,
            of=ranked.of,
            total=str(display_points(ranked.total)),
            pillars={
                code: str(display_points(pillars.get(ranked.unit, {}).get(code, Fraction(0)))) for code in pillar_codes
            },
        )
        for ranked in rank_units(totals)
    )


def rank_moves(before: Iterable[RankedUnit], after: Iterable[RankedUnit]) -> tuple[RankMove, ...]:
    """Every unit whose "rank/N" differs between two published rankings (a restatement lists them)."""
    old = {entry.unit_id: f"{entry.rank}/{entry.of}" for entry in before}
    new = {entry.unit_id: f"{entry.rank}/{entry.of}" for entry in after}
    return tuple(
        RankMove(unit_id=unit, from_rank=old.get(unit), to_rank=new.get(unit))
        for unit in sorted(set(old) | set(new))
        if old.get(unit) != new.get(unit)
    )
