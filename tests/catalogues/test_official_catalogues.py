"""Each official catalogue holds what its source states: node counts, point totals, recorded defects."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from kpi_core.catalogue import Catalogue


def levels(catalogue: Catalogue) -> Counter[str]:
    return Counter(node.level for node in catalogue.nodes)


def defect(catalogue: Catalogue, node: str | None, field: str) -> tuple[str, str | None]:
    found = next(item for item in catalogue.defects if item.node == node and item.field == field)
    return found.source_text, found.used


def test_hcmc_districts_has_9_pillars_51_components_and_660_points(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["hcmc-dti-districts@1.0"]
    assert levels(catalogue) == Counter({"pillar": 9, "component": 51})
    assert catalogue.total_max_points == Decimal(660)
    assert [(root.code, root.max_points) for root in catalogue.roots] == [
        (code, Decimal(points))
        for code, points in [
            ("1", 60),
            ("2", 50),
            ("3", 70),
            ("4", 60),
            ("5", 35),
            ("6", 185),
            ("7", 90),
            ("8", 90),
            ("9", 20),
        ]
    ]
    assert sum(Decimal(leaf.max_points or 0) for leaf in catalogue.leaves()) == Decimal(660)
    assert catalogue.peer_group == "hcmc-districts"
    assert len(catalogue.context_fields) >= 20


def test_hcmc_districts_records_the_690_total_and_the_150_point_tier(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["hcmc-dti-districts@1.0"]
    total_text, total_used = defect(catalogue, None, "total")
    assert total_used == "660"
    assert "690" in total_text or any("690" in item.source_text for item in catalogue.defects)
    assert defect(catalogue, "3.3", "threshold") == ("Từ 50% - 80%: 150 điểm", "15")
    tiers = catalogue.nodes_by_code["3.3"].rule.tiers  # type: ignore[union-attr]
    assert [tier.points for tier in tiers] == [Decimal(30), Decimal(15), Decimal(0)]


def test_binh_dinh_has_27_indicators_each_derived_from_a_national_one(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["binhdinh-smartcity-kpi@1.0"]
    indicators = [node for node in catalogue.nodes if node.level == "indicator"]
    assert len(indicators) == 27
    assert catalogue.kind == "kpi" and catalogue.total_max_points is None
    assert catalogue.derived_from is not None and catalogue.derived_from.id == "vn-smartcity-kpi"
    assert all(node.national_ref for node in indicators)
    assert all(node.lead_agency for node in indicators)


def test_binh_dinh_records_that_indicator_27_has_another_indicators_method(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["binhdinh-smartcity-kpi@1.0"]
    text, used = defect(catalogue, "27", "name")
    assert "Mức độ đóng góp" in text
    assert used is not None and "L3.N3.PN1.01" in used


def test_hcmc_departments_has_6_pillars_32_components_and_330_points(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["hcmc-dti-departments@1.0"]
    assert levels(catalogue) == Counter({"pillar": 6, "component": 32})
    assert catalogue.total_max_points == Decimal(330)
    assert [(root.code, root.max_points) for root in catalogue.roots] == [
        (code, Decimal(points)) for code, points in [("1", 40), ("2", 25), ("3", 70), ("4", 30), ("5", 35), ("6", 130)]
    ]
    assert sum(Decimal(leaf.max_points or 0) for leaf in catalogue.leaves()) == Decimal(330)
    assert catalogue.peer_group == "hcmc-departments"
    assert [field.code for field in catalogue.context_fields][:10] == [
        "unit_name",
        "contact_address",
        "portal_url",
        "subordinate_agencies",
        "civil_servants",
        "public_employees",
        "physical_servers",
        "workstations",
        "information_systems",
        "administrative_procedures",
    ]
    assert {node.rule.kind for node in catalogue.leaves() if node.code in ("4.1", "5.1")} == {"peer_minmax"}  # type: ignore[union-attr]


def test_hcmc_departments_records_its_pillar_2_name_and_6_13_readings(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["hcmc-dti-departments@1.0"]
    assert defect(catalogue, "2", "name")[0] == "Thế chế số"
    assert catalogue.nodes_by_code["2"].name_vi == "Thể chế số"
    assert "6.13" in {item.node for item in catalogue.defects}


def test_the_national_kpi_set_has_50_indicators_in_3_layers(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["vn-smartcity-kpi@1.0"]
    assert levels(catalogue) == Counter({"layer": 3, "group": 10, "subgroup": 24, "indicator": 50})
    assert catalogue.kind == "kpi" and catalogue.total_max_points is None
    per_layer = Counter(catalogue.root_of(node.code).code for node in catalogue.nodes if node.level == "indicator")
    assert per_layer == Counter({"L1": 5, "L2": 32, "L3": 13})
    assert all(node.max_points is None for node in catalogue.nodes)


def test_the_national_kpi_set_records_its_duplicate_code_and_subgroup_typo(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["vn-smartcity-kpi@1.0"]
    codes = {node.code for node in catalogue.nodes}
    assert {"L2.N3.PN1.04", "L2.N3.PN1.05", "L2.N1.PN10"} <= codes
    recorded = {(item.node, item.source_text) for item in catalogue.defects}
    assert any(node == "L2.N3.PN1.04" and "L2.N3.PN1.05" in text for node, text in recorded)
    assert any("L2.N1.P10" in text for _, text in recorded)
    assert catalogue.nodes_by_code["L1.N3.PN1.01"].rule.kind == "survey_scale"  # type: ignore[union-attr]


def test_the_provincial_dti_has_9_pillars_98_components_and_1000_points(catalogues: dict[str, Catalogue]) -> None:
    catalogue = catalogues["vn-dti-province@1.0"]
    assert levels(catalogue) == Counter({"pillar": 9, "component": 98, "subcomponent": 21, "data_line": 5})
    assert catalogue.total_max_points == Decimal(1000)
    assert [(root.code, root.max_points, root.scored) for root in catalogue.roots] == [
        *(
            (str(code), Decimal(points), True)
            for code, points in zip(range(1, 9), (100, 100, 100, 100, 100, 200, 150, 150), strict=True)
        ),
        ("9", None, False),  # smart city: listed, not scored yet
    ]
    per_pillar = Counter(node.parent for node in catalogue.nodes if node.level == "component")
    assert [per_pillar[str(code)] for code in range(1, 10)] == [10, 11, 7, 13, 12, 22, 12, 8, 3]
    assert catalogue.nodes_by_code["5.12"].max_points == Decimal(15)
    assert catalogue.node("1.1").lead_agency == "Sở Thông tin và Truyền thông"  # type: ignore[union-attr]


def test_the_provincial_dti_keeps_gia_lai_2022_and_records_the_documents_inconsistencies(
    catalogues: dict[str, Catalogue],
) -> None:
    catalogue = catalogues["vn-dti-province@1.0"]
    reference = catalogue.reference_results[0].model_dump()
    assert (reference["unit"], reference["period"], reference["rank"]) == ("gia-lai", 2022, "62/63")
    assert reference["pillars"]["1"] == {"points": "63.33", "rank": "62/63"}
    assert reference["components"]["4.2"] == "10"
    assert defect(catalogue, "4.2", "reference_score")[0] == "100"
    recorded = {item.node for item in catalogue.defects}
    assert {"4.2", "4.12", "7", "8.2", "8.3", "8.5"} <= recorded
