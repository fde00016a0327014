"""The catalogue model: a versioned tree of indicators, read from data and validated whole.

`parse_catalogue` takes the parsed data of one catalogue file (or API body) and either returns a
`Catalogue` or raises `CatalogueInvalid` listing every defect it found, each naming its node code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from functools import cached_property
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kpi_core.rules import PEER_RELATIVE_KINDS, PartsRule, Rule, SumOfChildrenRule, Tier, rule_input_names, walk_rules

if TYPE_CHECKING:
    from kpi_core.measurements import InputChecks

CATALOGUE_FORMAT = "kpi-ledger.catalogue/v1"
InputType = Literal["count", "number", "percent", "boolean", "category", "points", "text"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputSpec(_Model):
    name: str
    meaning_vi: str | None = None
    meaning_en: str | None = None
    type: InputType = "number"
    options: tuple[str, ...] | None = None
    signed: bool = False  # a number that can be negative; counts, amounts and shares never are
    # a value the source prints (a required list of 7 platforms): filled in, and any other value refused
    constant: Decimal | None = None


class ContextField(_Model):
    code: str
    name_vi: str
    name_en: str | None = None
    type: InputType = "number"
    unit: str | None = None
    note: str | None = None


class Node(_Model):
    code: str
    parent: str | None = None
    level: str
    name_vi: str
    name_en: str | None = None
    max_points: Decimal | None = None
    scored: bool = True
    unit: str | None = None
    inputs: tuple[InputSpec, ...] = ()
    rule: Rule | None = None
    # the source lets a unit claim that this criterion does not apply to it (003 §II.2.c: "đơn vị không có
    # nội dung như..."), which earns the max once an evaluator accepts it; refused everywhere else
    not_applicable: bool = False
    not_applicable_note: str | None = None
    method_vi: str | None = None
    method_en: str | None = None
    data_requirements_vi: str | None = None
    data_source_vi: str | None = None
    meaning_vi: str | None = None
    lead_agency: str | None = None
    cooperating_agencies: tuple[str, ...] = ()
    deadline: str | None = None
    national_ref: str | None = None
    changes_from_national: str | None = None
    note: str | None = None

    def input_spec(self, name: str) -> InputSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)

    @cached_property
    def input_checks(self) -> InputChecks:
        """What checking a measurement of this node reads from it, worked out on first use."""
        from kpi_core.measurements import InputChecks  # which reads nodes: imported when first asked

        return InputChecks.of(self)


class Source(_Model):
    document: str
    date: str | None = None
    issuer: str | None = None
    seed: str | None = None
    notes: str | None = None


class CatalogueRef(_Model):
    id: str
    version: str


class Defect(_Model):
    node: str | None = None
    field: str
    source_text: str
    used: str | None = None
    reason: str


class ReferenceResult(_Model):
    model_config = ConfigDict(frozen=True, extra="allow")

    unit: str
    period: int
    unit_name_vi: str | None = None


class Catalogue(_Model):
    format: Literal["kpi-ledger.catalogue/v1"] = "kpi-ledger.catalogue/v1"
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=50)
    kind: Literal["points", "kpi"]
    title_vi: str
    title_en: str | None = None
    peer_group: str
    # the day of the period's year at which "the units of the period" are read from the unit registry
    period_reference_day: str = Field(default="12-31", pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
    total_max_points: Decimal | None = None
    source: Source
    derived_from: CatalogueRef | None = None
    context_fields: tuple[ContextField, ...] = ()
    nodes: tuple[Node, ...]
    defects: tuple[Defect, ...] = ()
    reference_results: tuple[ReferenceResult, ...] = ()

    @cached_property
    def nodes_by_code(self) -> dict[str, Node]:
        return {node.code: node for node in self.nodes}

    @cached_property
    def children(self) -> dict[str | None, tuple[Node, ...]]:
        grouped: dict[str | None, list[Node]] = {}
        for node in self.nodes:
            grouped.setdefault(node.parent, []).append(node)
        return {parent: tuple(kids) for parent, kids in grouped.items()}

    @property
    def roots(self) -> tuple[Node, ...]:
        return self.children.get(None, ())

    def children_of(self, code: str) -> tuple[Node, ...]:
        return self.children.get(code, ())

    def node(self, code: str) -> Node | None:
        return self.nodes_by_code.get(code)

    def leaves(self) -> Iterator[Node]:
        """Nodes that carry their own rule (the ones measurements are posted for)."""
        for node in self.nodes:
            if node.rule is not None and not isinstance(node.rule, SumOfChildrenRule):
                yield node

    def root_of(self, code: str) -> Node:
        node = self.nodes_by_code[code]
        while node.parent is not None:
            node = self.nodes_by_code[node.parent]
        return node

    @property
    def ref(self) -> CatalogueRef:
        return CatalogueRef(id=self.id, version=self.version)

    def document(self) -> dict[str, Any]:
        """The catalogue as plain JSON-ready data (what the registration event carries)."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=False)

    def content_hash(self) -> str:
        canonical = json.dumps(self.document(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class CatalogueInvalid(ValueError):
    """A catalogue that cannot be accepted; `defects` lists every problem, each naming its code."""

    def __init__(self, catalogue_label: str, defects: list[str]) -> None:
        self.defects = defects
        super().__init__(f"catalogue {catalogue_label} is invalid: " + "; ".join(defects))


def parse_catalogue(data: Mapping[str, Any]) -> Catalogue:
    label = f"{data.get('id', '?')}@{data.get('version', '?')}"
    try:
        catalogue = Catalogue.model_validate(data)
    except ValidationError as error:
        field_defects = [_describe(err, data) for err in error.errors()]
        raise CatalogueInvalid(label, field_defects + _defects_of_the_valid_part(data)) from None
    defects = list(_structural_defects(catalogue))
    if defects:
        raise CatalogueInvalid(label, defects)
    return catalogue


def _defects_of_the_valid_part(data: Mapping[str, Any]) -> list[str]:
    """Tree defects among the nodes that are well-formed, so one refusal names every defect it can."""
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        return []
    valid, broken = [], set()
    for raw in nodes:
        try:
            Node.model_validate(raw)
            valid.append(raw)
            continue
        except ValidationError:
            broken.add(raw.get("code") if isinstance(raw, Mapping) else None)
        # keep what the tree checks need (code, parent, points) of a node whose rule or inputs are malformed
        skeleton = {
            key: raw[key] for key in ("code", "parent", "level", "name_vi", "max_points", "scored") if key in raw
        }
        try:
            Node.model_validate(skeleton)
            valid.append(skeleton)
        except ValidationError:
            pass
    try:
        partial = Catalogue.model_validate({**data, "nodes": valid})
    except ValidationError:
        return []  # the catalogue's own fields are broken too: the field defects say so
    return [
        defect
        for defect in _structural_defects(partial)
        if not any(f"parent {code} " in defect or f"node {code}:" in defect for code in broken if code)
    ]


def _describe(err: Any, data: Mapping[str, Any]) -> str:
    location = list(err["loc"])
    where = ".".join(str(part) for part in location)
    if len(location) >= 2 and location[0] == "nodes" and isinstance(location[1], int):
        nodes = data.get("nodes") or []
        if location[1] < len(nodes) and isinstance(nodes[location[1]], Mapping):
            code = nodes[location[1]].get("code", "?")
            where = f"node {code}: " + ".".join(str(part) for part in location[2:])
    return f"{where}: {err['msg']}"


def _structural_defects(catalogue: Catalogue) -> Iterator[str]:
    seen: set[str] = set()
    for node in catalogue.nodes:
        if node.code in seen:
            yield f"node {node.code}: duplicate code"
        if node.parent is not None and node.parent not in seen:
            known = node.parent in catalogue.nodes_by_code
            yield f"node {node.code}: parent {node.parent} " + ("comes after its child" if known else "does not exist")
        seen.add(node.code)
        yield from _node_rule_defects(node)
    if catalogue.kind == "points":
        yield from _points_defects(catalogue)


def _node_rule_defects(node: Node) -> Iterator[str]:
    if node.rule is None:
        return
    declared = {spec.name for spec in node.inputs}
    if len(declared) != len(node.inputs):
        yield f"node {node.code}: an input name is declared twice"
    for name in rule_input_names(node.rule):
        if name not in declared:
            yield f"node {node.code}: rule uses undeclared input '{name}'"
    for rule in walk_rules(node.rule):
        gate = getattr(rule, "gate", None)
        gate_spec = node.input_spec(gate) if gate else None
        if gate_spec is not None and gate_spec.type != "boolean":
            yield f"node {node.code}: the gate input '{gate}' must be boolean"
    if node.not_applicable and (node.rule is None or isinstance(node.rule, SumOfChildrenRule)):
        yield f"node {node.code}: only a node with its own rule can allow a not-applicable claim"
    yield from _tier_defects(node.code, node.rule)
    yield from _award_defects(node)
    if isinstance(node.rule, PartsRule) and node.max_points is not None:
        parts_total = sum((part.max_points for part in node.rule.parts), Decimal(0))
        if parts_total != node.max_points:
            yield f"node {node.code}: parts sum to {parts_total}, max is {node.max_points}"


def _tier_defects(code: str, rule: Rule) -> Iterator[str]:
    tiers: tuple[Tier, ...] = getattr(rule, "tiers", ())
    bounds = [tier.bound for tier in tiers if tier.bound is not None]
    if any(lower > upper for upper, lower in pairwise(bounds)):
        yield f"node {code}: tier thresholds are not ordered from the top"
    if any(tier.otherwise for tier in tiers[:-1]):
        yield f"node {code}: 'otherwise' tier is not last"
    if isinstance(rule, PartsRule):
        for part in rule.parts:
            yield from _tier_defects(code, part.rule)


def _award_defects(node: Node) -> Iterator[str]:
    """No tier or level may award more than its node (or part) can give; one peer rule per node."""
    peer_rules = [rule for rule in walk_rules(node.rule) if rule.kind in PEER_RELATIVE_KINDS]
    if len(peer_rules) > 1:
        yield f"node {node.code}: more than one peer-relative rule"
    limits: list[tuple[Rule | None, Decimal | None]] = [(node.rule, node.max_points)]
    if isinstance(node.rule, PartsRule):
        limits += [(part.rule, part.max_points) for part in node.rule.parts]
    for rule, limit in limits:
        awards = [tier.points for tier in getattr(rule, "tiers", ())] + [
            level.points for level in getattr(rule, "levels", ())
        ]
        if limit is not None and any(points > limit for points in awards):
            yield f"node {node.code}: a tier or level awards more than {limit} points"


def _points_defects(catalogue: Catalogue) -> Iterator[str]:
    for node in catalogue.nodes:
        if not node.scored:
            continue
        kids = [kid for kid in catalogue.children_of(node.code) if kid.scored and kid.max_points is not None]
        if kids and node.max_points is not None:
            total = sum((kid.max_points for kid in kids if kid.max_points is not None), Decimal(0))
            if total != node.max_points:
                yield f"node {node.code}: children's max points sum to {total}, max is {node.max_points}"
        if node.rule is not None and node.max_points is None:
            yield f"node {node.code}: scored rule without max_points"
    roots = [root for root in catalogue.roots if root.scored and root.max_points is not None]
    total = sum((root.max_points for root in roots if root.max_points is not None), Decimal(0))
    if catalogue.total_max_points is not None and total != catalogue.total_max_points:
        yield f"catalogue: pillars sum to {total}, total_max_points is {catalogue.total_max_points}"
