"""General information ("Thông tin chung", 003 Phụ lục III): each value checked by the type its
catalogue declares for the field, as the event will store it (numbers as exact decimal text)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kpi_core.catalogue import ContextField
from kpi_core.measurements import FieldError, parse_number

CONTEXT_TEXT_LIMIT = 2000  # characters of a text or category value: an address, a URL, a name


def check_context(
    fields: Iterable[ContextField], raw: Mapping[str, Any], catalogue_id: str
) -> tuple[dict[str, str | bool], list[FieldError]]:
    """The values to store and every problem, each naming its field (`values.population`): a field the
    catalogue does not declare; a boolean that is not true or false; a text that is not text or is longer
    than CONTEXT_TEXT_LIMIT; a number that is not finite or beyond parse_number's bounds; a negative
    number; a count that is not whole; a share above 1. At least one value."""
    declared = {field.code: field for field in fields}
    values: dict[str, str | bool] = {}
    errors: list[FieldError] = []
    for code, value in raw.items():
        where = f"values.{code}"
        field = declared.get(code)
        if field is None:
            errors.append(FieldError(where, f"{catalogue_id} has no general-information field {code}"))
            continue
        checked = context_value(field, value, where)
        if isinstance(checked, FieldError):
            errors.append(checked)
        else:
            values[code] = checked
    if not raw:
        errors.append(FieldError("values", "at least one field"))
    return values, errors


def context_value(field: ContextField, value: Any, where: str) -> str | bool | FieldError:
    """One value as the event stores it, or why it is refused."""
    if field.type == "boolean":
        return value if isinstance(value, bool) else FieldError(where, "must be true or false")
    if field.type in ("text", "category"):
        if not isinstance(value, str):
            return FieldError(where, "must be text")
        if len(value) > CONTEXT_TEXT_LIMIT:
            return FieldError(where, f"must be a text of at most {CONTEXT_TEXT_LIMIT} characters")
        return value
    number = parse_number(value, field.type)
    if isinstance(number, str):
        return FieldError(where, number)
    if number < 0:
        return FieldError(where, "cannot be negative")
    if field.type == "count":
        if number != number.to_integral_value():
            return FieldError(where, "a count must be a whole number")
        return str(int(number))  # "1200", whether sent as 1200, "1200.0" or "1.2E+3"
    if field.type == "percent" and number > 1:
        return FieldError(where, 'a share is a fraction from 0 to 1 (write 0.45 or "45%")')
    return str(number)
