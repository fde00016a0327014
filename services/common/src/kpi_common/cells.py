"""Text cells a spreadsheet program opens as text, never as a formula (CSV injection): the one rule every
CSV and workbook the services write follows, templates and exports alike.

A text cell starting with `=`, `+`, `-` or `@` (or a tab or a return, which start another cell) may be
read as a formula; in a CSV it is written after a `'`, as OWASP's CSV injection advice has it (a workbook
marks the cell as text instead). A number is never touched, negative or not: `-2.50` stays `-2.50`.
"""

from __future__ import annotations

import re
from typing import TypeVar

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
Value = TypeVar("Value")


def starts_a_formula(text: str) -> bool:
    """Text a spreadsheet program may read as a formula: it starts as one and is not a plain number."""
    return text.startswith(FORMULA_STARTS) and NUMBER.match(text) is None


def inert(value: Value) -> Value | str:
    """A CSV cell as written: text that may be read as a formula after a `'`; anything else as it is."""
    return "'" + value if isinstance(value, str) and starts_a_formula(value) else value
