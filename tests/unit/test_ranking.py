"""Competition ranking of units on exact totals."""

from __future__ import annotations

from fractions import Fraction

from kpi_core.ranking import Ranked, rank_units

F = Fraction


def test_tied_units_share_a_rank_and_the_next_rank_skips():
    ranked = rank_units({"hue": F(80), "hanoi": F(90), "hcm": F(80), "camau": F(70)})
    assert [(r.unit, r.rank) for r in ranked] == [("hanoi", 1), ("hcm", 2), ("hue", 2), ("camau", 4)]


def test_a_rank_is_labelled_rank_over_the_number_of_units():
    ranked = rank_units({"hue": F(80), "hanoi": F(90), "hcm": F(80), "camau": F(70)})
    assert [r.label for r in ranked] == ["1/4", "2/4", "2/4", "4/4"]


def test_tied_units_are_listed_by_unit_id_whatever_the_input_order():
    first = rank_units({"hue": F(5), "bac-ninh": F(5), "an-giang": F(5)})
    second = rank_units({"an-giang": F(5), "hue": F(5), "bac-ninh": F(5)})
    assert (
        first
        == second
        == [
            Ranked("an-giang", 1, 3, F(5)),
            Ranked("bac-ninh", 1, 3, F(5)),
            Ranked("hue", 1, 3, F(5)),
        ]
    )


def test_totals_that_round_to_the_same_display_are_not_tied():
    ranked = rank_units({"hue": F(1, 3) + F(1, 10**6), "hanoi": F(1, 3)})
    assert [(r.unit, r.rank) for r in ranked] == [("hue", 1), ("hanoi", 2)]


def test_ranking_no_units_gives_an_empty_list():
    assert rank_units({}) == []
