"""Verify a unit's whole self-assessment in one request: every component accepted except the listed
adjustments, each decided by the one verification decider, appended in one transaction (all or none)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from kpi_common.problems import LONGEST_ERROR_TEXT, MOST_ERRORS, cut
from kpi_core.measurement_sets import SetScope
from kpi_core.verification_sets import VerificationSetDecision, VerifyUnit, decide_verification_set
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.handlers import assessed_catalogue, check_assessed_unit
from kpi_ingest.service_layer.measurement_sets import SetImported, SetRefused, append_set, replay_set
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache


async def verify_unit(
    command: VerifyUnit, uow: UnitOfWork, catalogues: CatalogueRegistry, units: RegistryCache
) -> SetImported:
    template = command.acceptance
    scope = SetScope(template.catalogue_id, template.catalogue_version, template.period)
    actor, key = template.submitted_by, template.idempotency_key
    async with uow:
        catalogue, registry = await assessed_catalogue(
            uow, catalogues, units, scope.catalogue_id, scope.catalogue_version, (template.unit_id, scope.period)
        )
    check_assessed_unit(registry, catalogue, scope.period, template.unit_id)
    try:
        async with uow if command.dry_run else uow.writing():
            if not command.dry_run:  # a dry run stores nothing: it reads without the append lock
                await uow.events.lock()
            earlier = await uow.sets.by_idempotency_key(actor, key)
            if earlier is not None and not command.dry_run:
                return replay_set(earlier, command.fingerprint)
            states = await uow.sets.component_states(scope, template.unit_id)
            decision = decide_verification_set(command.adjustments, template, catalogue, states)
            summary = _summary(command, decision, None, stored=False)
            if decision.refused and not command.dry_run:
                rows = sorted({(error.row, error.field) for error in decision.refused})
                raise SetRefused(
                    f"{len(rows)} decision(s) refused; nothing was stored: list an adjusted component "
                    "(with `supersedes`) or correct the adjustments named",
                    summary,
                )
            if command.dry_run or not decision.events:
                return SetImported(summary)
            summary = _summary(command, decision, str(uuid.uuid4()), stored=True)
            summary = await append_set(
                uow, decision.events, summary, actor=actor, key=key, fingerprint=command.fingerprint
            )
            await uow.commit()
            return SetImported(summary)
    except IntegrityError:
        async with uow:
            earlier = await uow.sets.by_idempotency_key(actor, key)
        if earlier is None:
            raise
        return replay_set(earlier, command.fingerprint)


def _summary(
    command: VerifyUnit, decision: VerificationSetDecision, set_id: str | None, *, stored: bool
) -> dict[str, Any]:
    template = command.acceptance
    errors = [
        {"row": e.row, "field": cut(e.field, LONGEST_ERROR_TEXT), "message": cut(e.message, LONGEST_ERROR_TEXT)}
        for e in decision.refused[:MOST_ERRORS]
    ]
    return {
        "set_id": set_id,
        "catalogue_id": template.catalogue_id,
        "catalogue_version": template.catalogue_version,
        "period": template.period,
        "unit_id": template.unit_id,
        "dry_run": command.dry_run,
        "stored": stored,
        "accepted": decision.count("accepted"),
        "adjusted": decision.count("adjusted"),
        "unchanged": len(decision.unchanged),
        "refused": len({error.row or error.field for error in decision.refused}),  # adjustments, acceptances
        "errors": errors,
        "errors_total": len(decision.refused),
        "first_sequence": None,
        "last_sequence": None,
    }
