"""Readings of the sources that the catalogues encode: where a not-applicable claim is allowed, the
news-count bands derived from the count, the constants the sources fix, and the text slips fixed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from kpi_core.catalogue import Catalogue
from kpi_core.inputs import RecordedInputs, typed_inputs
from kpi_core.measurements import check_inputs
from kpi_core.rules import TiersRule, ValueRule
from kpi_core.scoring import score_indicator

# 003 §II.2.c: "Đối với các cơ quan, đơn vị không có nội dung như: tiêu chí về dịch vụ công trực tuyến
# do đơn vị không có Thủ tục hành chính, ... cách chấm điểm là điểm tối đa của tiêu chí đó."
ALLOWED_NOT_APPLICABLE = {
    "hcmc-dti-departments@1.0": {"3.3", "5.1", "5.2", "5.3", "5.4", "6.2", "6.3", "6.4", "6.10", "6.13"},
    "hcmc-dti-districts@1.0": {"3.3", "5.1", "5.2", "5.3", "5.4", "6.2", "6.3", "6.4", "6.10", "6.13", "6.15"},
    "vn-dti-province@1.0": set(),  # 004 and 003 Appendix III state no such rule
    "vn-smartcity-kpi@1.0": set(),  # 001 neither
    "binhdinh-smartcity-kpi@1.0": set(),  # 000/002 neither
}

# the "section exists + news count in bands" components: (catalogue, code)
NEWS_SECTIONS = [("vn-dti-province@1.0", "1.5"), ("hcmc-dti-departments@1.0", "1.4"), ("hcmc-dti-districts@1.0", "1.4")]


def allowed(catalogue: Catalogue) -> set[str]:
    return {node.code for node in catalogue.nodes if node.not_applicable}


def test_the_allowed_not_applicable_codes_are_exactly_the_readings_of_each_source(
    catalogues: dict[str, Catalogue],
) -> None:
    assert set(catalogues) == set(ALLOWED_NOT_APPLICABLE)
    for name, expected in ALLOWED_NOT_APPLICABLE.items():
        catalogue = catalogues[name]
        assert allowed(catalogue) == expected, name
        assert all(catalogue.nodes_by_code[code].not_applicable_note for code in expected), name
        assert all(node.not_applicable_note is None for node in catalogue.nodes if not node.not_applicable), name
        # the reading (or the absence of any rule) is recorded once for the whole catalogue, with the codes it allows
        reading = [item for item in catalogue.defects if item.node is None and item.field == "not_applicable"]
        assert len(reading) == 1, name
        assert all(code in (reading[0].used or "") for code in expected), name


@pytest.mark.parametrize("name", ["vn-dti-province@1.0", "hcmc-dti-departments@1.0", "hcmc-dti-districts@1.0"])
def test_the_steering_committee_criterion_never_allows_a_not_applicable_claim(
    name: str, catalogues: dict[str, Catalogue]
) -> None:
    assert catalogues[name].nodes_by_code["1.1"].not_applicable is False


def test_the_hcmc_readings_quote_the_source_rule_and_the_others_say_none_is_stated(
    catalogues: dict[str, Catalogue],
) -> None:
    for name, codes in ALLOWED_NOT_APPLICABLE.items():
        reading = next(item for item in catalogues[name].defects if item.field == "not_applicable")
        if codes:
            assert "không có nội dung" in reading.source_text and "điểm tối đa của tiêu chí đó" in reading.source_text
        else:
            assert (reading.used or "").startswith("not_applicable false on every"), name


def _score(catalogue: Catalogue, code: str, raw: dict[str, Any]) -> Fraction | None:
    node = catalogue.nodes_by_code[code]
    checked, errors = check_inputs(node, raw)
    assert errors == [], (code, raw, errors)
    stored = {key: value if isinstance(value, bool) else str(value) for key, value in checked.items()}
    return score_indicator(node, RecordedInputs(code, typed_inputs(node, stored), "e", 1)).points


@pytest.mark.parametrize(("name", "code"), NEWS_SECTIONS)
@pytest.mark.parametrize(
    ("inputs", "points"),
    [
        ({"a": True, "b": 20}, "10"),  # Từ 20 trở lên: điểm tối đa
        ({"a": True, "b": 35}, "10"),
        ({"a": True, "b": 19}, "5"),  # Từ 10 đến 19: 1/2 × Điểm tối đa
        ({"a": True, "b": 10}, "5"),
        ({"a": True, "b": 9}, "2.5"),  # Dưới 10: 1/4 × Điểm tối đa
        ({"a": True, "b": 0}, "2.5"),  # a section with no news yet is still "dưới 10"
        ({"a": False, "b": 25}, "0"),  # Chưa có chuyên mục: 0 điểm, whatever the count
        ({"a": False}, "0"),  # and the count is then not asked for
    ],
)
def test_the_news_section_is_scored_from_its_count_once_the_section_exists(
    name: str, code: str, inputs: dict[str, Any], points: str, catalogues: dict[str, Catalogue]
) -> None:
    catalogue = catalogues[name]
    rule = catalogue.nodes_by_code[code].rule
    assert isinstance(rule, TiersRule) and rule.gate == "a" and rule.measure.input == "b"
    assert _score(catalogue, code, inputs) == Fraction(Decimal(points))


@pytest.mark.parametrize(("name", "code"), NEWS_SECTIONS)
def test_a_band_can_no_longer_be_claimed_beside_a_count_that_does_not_reach_it(
    name: str, code: str, catalogues: dict[str, Catalogue]
) -> None:
    node = catalogues[name].nodes_by_code[code]
    assert {spec.name: spec.type for spec in node.inputs} == {"a": "boolean", "b": "count"}
    assert node.input_spec("a").meaning_vi == "Đã có chuyên mục"  # type: ignore[union-attr]
    _, errors = check_inputs(node, {"a": "from_20", "b": 12})
    assert [error.field for error in errors] == ["inputs.a"]


def test_no_catalogue_asks_for_a_band_of_the_news_count_as_a_category(catalogues: dict[str, Catalogue]) -> None:
    options = {
        (name, node.code)
        for name, catalogue in catalogues.items()
        for node in catalogue.nodes
        for spec in node.inputs
        if spec.options and {"from_20", "under_10"} & set(spec.options)
    }
    assert options == set()


def test_the_energy_indicator_divides_by_the_fixed_top_100_of_its_definition(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["vn-smartcity-kpi@1.0"]
    node = catalogue.nodes_by_code["L2.N3.PN2.01"]
    assert "TOP 100" in (node.data_requirements_vi or "")
    assert [spec.name for spec in node.inputs] == ["a"]  # the total is not asked for
    assert isinstance(node.rule, ValueRule) and node.rule.measure.input == "a" and not node.rule.measure.percent
    # 37 of the 100 key energy consumers monitored online: 37 %
    score = score_indicator(node, RecordedInputs(node.code, {"a": Decimal(37)}, "e", 1))
    assert (score.status, score.value) == ("scored", Fraction(37))
    constant = next(item for item in catalogue.defects if item.node == "L2.N3.PN2.01" and item.field == "constant")
    assert "TOP 100" in constant.source_text


@pytest.mark.parametrize(
    ("name", "code", "value"),
    [
        ("hcmc-dti-departments@1.0", "3.4", "7"),  # the required list printed 1) ... 7)
        ("hcmc-dti-districts@1.0", "3.4", "7"),
        ("vn-dti-province@1.0", "3.6", "7"),  # "tối thiểu theo danh mục yêu cầu (7)"
        ("vn-smartcity-kpi@1.0", "L2.N1.PN7.01", "4"),  # điện, nước, thuế đất, phí môi trường
    ],
)
def test_a_constant_the_source_prints_is_fixed_on_the_input_not_asked_for(
    name: str, code: str, value: str, catalogues: dict[str, Catalogue]
) -> None:
    catalogue = catalogues[name]
    constant = next(item for item in catalogue.defects if item.node == code and item.field == "constant")
    assert f"constant {value}" in (constant.used or "")
    spec = catalogue.nodes_by_code[code].input_spec("b")
    assert spec is not None and spec.constant == Decimal(value)


def test_only_the_survey_answer_on_a_scale_below_zero_is_signed(catalogues: dict[str, Catalogue]) -> None:
    signed = {
        (name, node.code, spec.name)
        for name, catalogue in catalogues.items()
        for node in catalogue.nodes
        for spec in node.inputs
        if spec.signed
    }
    assert signed == {("vn-smartcity-kpi@1.0", "L1.N3.PN1.01", "c")}


def test_shares_posted_directly_are_percent_inputs(catalogues: dict[str, Catalogue]) -> None:
    shares = {
        (name, node.code, spec.name)
        for name, catalogue in catalogues.items()
        for node in catalogue.nodes
        for spec in node.inputs
        if spec.type == "percent"
    }
    direct = {("3.1", "a"), ("3.2", "a"), ("3.3", "a"), ("6.13", "a"), ("6.13", "b")}  # "Tỷ lệ ..." as one number
    assert shares == {
        (name, code, input_name)
        for name in ALLOWED_NOT_APPLICABLE
        if name.startswith("hcmc")
        for code, input_name in direct
    }


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def test_the_provincial_document_numbers_carry_no_line_break_artefact(
    catalogues: dict[str, Catalogue], documents: dict[str, dict[str, Any]]
) -> None:
    catalogue = catalogues["vn-dti-province@1.0"]
    assert "03/2017/TT-BTTTT ngày 24/4/2017" in catalogue.nodes_by_code["5.7"].name_vi
    assert "12/2022/TT-BTTTT ngày 12/8/2022" in catalogue.nodes_by_code["5.7"].name_vi
    assert "Văn bản số 1145/BTTTT-CATTT ngày 03/4/2020" in (catalogue.nodes_by_code["3.5"].method_vi or "")
    # nowhere in the catalogue's data (names, methods, labels...) outside the defects that quote the broken source
    data = {key: value for key, value in documents["vn-dti-province@1.0"].items() if key != "defects"}
    artefacts = [text for text in _texts(data) if re.search(r"[0-9A-ZĐ]- [A-ZĐ]", text)]
    assert artefacts == []
    fixed = {item.node for item in catalogue.defects if item.field in ("name", "method")}
    assert {"3.5", "5.7"} <= fixed


def test_the_provincial_catalogue_knows_003_appendix_iii_lists_9_3(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["vn-dti-province@1.0"]
    texts = [item.reason for item in catalogue.defects if item.node == "9"] + [
        catalogue.nodes_by_code[code].note or "" for code in ("9", "9.3")
    ]
    assert not any("lists only 9.1 and 9.2" in text or "does not list 9.3" in text for text in texts)
    assert not any("Not listed in seed 003" in text for text in texts)
    pillar_9 = next(item for item in catalogue.defects if item.node == "9" and item.field == "max_points")
    assert "9.1, 9.2 and 9.3" in pillar_9.source_text
    assert "Thực hiện đo lường chỉ số KPI phát triển Đô thị thông minh 0" in pillar_9.reason
