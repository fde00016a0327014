"""Parsing and validating a catalogue: the whole tree is checked and every defect is named."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from kpi_core.catalogue import CatalogueInvalid, parse_catalogue
from kpi_core.rules import LevelsRule, RatioRule

MINI_SHA256 = "d5b8c093b958978e7a07ddbb6467e0d46bef88233ed7709ef643bc8b234e429e"


def _node(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(node for node in data["nodes"] if node["code"] == code)


def _defects(data: dict[str, Any]) -> list[str]:
    with pytest.raises(CatalogueInvalid) as refused:
        parse_catalogue(data)
    return refused.value.defects


def test_the_mini_catalogue_parses_into_a_tree_of_pillars_and_components(mini):
    assert (mini.id, mini.version, mini.kind, mini.total_max_points) == ("mini-dti", "1.0", "points", Decimal(60))
    assert [root.code for root in mini.roots] == ["1", "3"]
    assert [kid.code for kid in mini.children_of("3")] == ["3.1", "3.2"]
    assert [leaf.code for leaf in mini.leaves()] == ["1.1", "1.2", "3.1", "3.2"]
    assert mini.root_of("3.2").code == "3"
    rule_31 = mini.nodes_by_code["3.1"].rule
    assert isinstance(rule_31, RatioRule)
    assert (rule_31.numerator, rule_31.denominator, rule_31.full_at) == (("a",), ("b",), Decimal("0.8"))
    assert isinstance(mini.nodes_by_code["1.1"].rule, LevelsRule)


def test_a_catalogue_document_parses_back_to_the_same_catalogue(mini):
    again = parse_catalogue(mini.document())
    assert again == mini
    assert again.content_hash() == mini.content_hash()


# every defect is refused and named


def test_a_duplicate_code_is_refused_naming_the_code(mini_data):
    _node(mini_data, "1.2")["code"] = "1.1"
    assert _defects(mini_data) == ["node 1.1: duplicate code"]


def test_a_missing_parent_is_refused_naming_the_child(mini_data):
    _node(mini_data, "3.2")["parent"] = "4"
    assert _defects(mini_data) == [
        "node 3.2: parent 4 does not exist",
        "node 3: children's max points sum to 20, max is 40",
    ]


def test_a_child_listed_before_its_parent_is_refused(mini_data):
    pillar = _node(mini_data, "3")
    mini_data["nodes"].remove(pillar)
    mini_data["nodes"].append(pillar)
    assert _defects(mini_data) == [
        "node 3.1: parent 3 comes after its child",
        "node 3.2: parent 3 comes after its child",
    ]


def test_children_whose_max_points_do_not_add_up_to_the_parent_are_refused(mini_data):
    _node(mini_data, "3.2")["max_points"] = "15"
    assert _defects(mini_data) == ["node 3: children's max points sum to 35, max is 40"]


def test_pillars_that_do_not_add_up_to_total_max_points_are_refused(mini_data):
    mini_data["total_max_points"] = "70"
    assert _defects(mini_data) == ["catalogue: pillars sum to 60, total_max_points is 70"]


def test_a_rule_using_an_undeclared_input_is_refused(mini_data):
    _node(mini_data, "3.1")["rule"]["numerator"] = ["c"]
    assert _defects(mini_data) == ["node 3.1: rule uses undeclared input 'c'"]


def test_tiers_not_ordered_from_the_top_are_refused(mini_data):
    _node(mini_data, "3.1")["rule"] = {
        "kind": "tiers",
        "measure": {"numerator": ["a"], "denominator": ["b"]},
        "tiers": [{"at_least": "0.5", "points": "10"}, {"above": "0.8", "points": "20"}],
    }
    assert _defects(mini_data) == ["node 3.1: tier thresholds are not ordered from the top"]


def test_an_otherwise_tier_that_is_not_last_is_refused(mini_data):
    _node(mini_data, "3.1")["rule"] = {
        "kind": "tiers",
        "measure": {"input": "a"},
        "tiers": [{"otherwise": True, "points": "0"}, {"above": "8", "points": "20"}],
    }
    assert _defects(mini_data) == ["node 3.1: 'otherwise' tier is not last"]


def test_parts_whose_max_points_do_not_add_up_to_the_node_are_refused(mini_data):
    _node(mini_data, "3.2")["rule"] = {
        "kind": "parts",
        "parts": [
            {"max_points": "5", "rule": {"kind": "ratio", "numerator": ["a"], "denominator": ["b"]}},
            {"max_points": "10", "rule": {"kind": "count_capped", "input": "a", "points_each": "1"}},
        ],
    }
    assert _defects(mini_data) == ["node 3.2: parts sum to 15, max is 20"]


def test_a_malformed_rule_is_refused_naming_its_node(mini_data):
    _node(mini_data, "1.2")["rule"] = {"kind": "yes_no"}
    defects = _defects(mini_data)
    assert len(defects) == 1
    assert defects[0].startswith("node 1.2: rule.yes_no.input: ")


def test_a_broken_catalogue_lists_every_defect_each_naming_its_node(mini_data):
    mini_data["total_max_points"] = "70"
    _node(mini_data, "1.2")["code"] = "1.1"
    _node(mini_data, "3.1")["rule"]["denominator"] = ["z"]
    _node(mini_data, "3.2")["rule"] = {
        "kind": "parts",
        "parts": [
            {"max_points": "4", "rule": {"kind": "ratio", "numerator": ["a"], "denominator": ["b"]}},
            {
                "max_points": "6",
                "rule": {
                    "kind": "tiers",
                    "measure": {"input": "a"},
                    "tiers": [{"above": "1", "points": "3"}, {"above": "2", "points": "6"}],
                },
            },
        ],
    }
    mini_data["nodes"].append(
        {"code": "4.1", "parent": "4", "level": "component", "name_vi": "Mồ côi", "max_points": "5"}
    )
    pillar_1 = _node(mini_data, "1")
    mini_data["nodes"].remove(pillar_1)
    mini_data["nodes"].insert(1, pillar_1)  # after the first 1.1, before the duplicate 1.1
    with pytest.raises(CatalogueInvalid) as refused:
        parse_catalogue(mini_data)
    assert sorted(refused.value.defects) == sorted(
        [
            "node 1.1: parent 1 comes after its child",
            "node 1.1: duplicate code",
            "node 3.1: rule uses undeclared input 'z'",
            "node 3.2: tier thresholds are not ordered from the top",
            "node 3.2: parts sum to 10, max is 20",
            "node 4.1: parent 4 does not exist",
            "catalogue: pillars sum to 60, total_max_points is 70",
        ]
    )
    assert str(refused.value).startswith("catalogue mini-dti@1.0 is invalid: ")


def test_a_catalogue_id_outside_lowercase_letters_digits_and_hyphens_is_refused(mini_data):
    mini_data["id"] = "VN.dti"
    assert any("id" in defect for defect in _defects(mini_data))


def test_a_ratio_rule_with_an_empty_denominator_is_refused(mini_data):
    _node(mini_data, "3.2")["rule"]["denominator"] = []
    assert [defect.split(":")[0] for defect in _defects(mini_data)] == ["node 3.2"]


# content hash


def test_content_hash_is_the_sha256_of_the_canonical_document(mini):
    assert mini.content_hash() == MINI_SHA256


def test_content_hash_does_not_depend_on_key_order(mini_data):
    reordered = dict(reversed(list(mini_data.items())))
    reordered["nodes"] = [dict(reversed(list(node.items()))) for node in mini_data["nodes"]]
    assert parse_catalogue(reordered).content_hash() == MINI_SHA256


@pytest.mark.parametrize(("field", "value"), [("name_vi", "Nhận thức số (sửa)"), ("name_en", "Digital awareness!")])
def test_content_hash_changes_when_a_name_changes(mini_data, field, value):
    _node(mini_data, "1")[field] = value
    assert parse_catalogue(mini_data).content_hash() != MINI_SHA256


def test_a_catalogue_with_a_malformed_node_still_gets_its_tree_defects_named(mini_data):
    mini_data["nodes"][1]["rule"] = {"kind": "levels"}  # 1.1: a malformed rule
    mini_data["nodes"][4]["max_points"] = "25"  # 3.1: pillar 3 no longer adds up
    defects = _defects(mini_data)
    assert any(defect.startswith("node 1.1: rule.levels") for defect in defects)
    assert "node 3: children's max points sum to 45, max is 40" in defects
    assert not any("parent 1.1" in defect for defect in defects)
