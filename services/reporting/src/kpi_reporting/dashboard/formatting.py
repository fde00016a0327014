"""Numbers as a reader of each language writes them: Vietnamese by default (1.000,5), English (1,000.5).

The read models answer numbers as exact decimal strings ("812.45"); they are shown digit for digit,
never rounded again here: only the separators change.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

SEPARATORS = {"vi": (".", ","), "en": (",", ".")}  # (thousands, decimal)
MINUS = "\u2212"
DASH = "–"


def number(value: object, lang: str = "vi") -> str:
    """A number in the language's format; "–" for no value; text that is not a number as it is."""
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return str(value)
    text = str(value).strip()
    try:
        Decimal(text)
    except InvalidOperation:
        return text
    negative = text.startswith("-")
    digits = text.lstrip("+-")
    whole, _, fraction = digits.partition(".")
    thousands, decimal = SEPARATORS.get(lang, SEPARATORS["vi"])
    groups: list[str] = []
    while len(whole) > 3:
        whole, group = whole[:-3], whole[-3:]
        groups.insert(0, group)
    shown = thousands.join([whole, *groups])
    if fraction:
        shown += decimal + fraction
    return (MINUS if negative else "") + shown


def signed(value: object, lang: str = "vi") -> str:
    """A change: "+2,50", "−1,25", "0"; "–" for none."""
    shown = number(value, lang)
    if shown == DASH or shown.startswith(MINUS):
        return shown
    try:
        is_zero = Decimal(str(value)) == 0
    except InvalidOperation:
        return shown
    return shown if is_zero else "+" + shown


def rank_change(places: int | None) -> str:
    """Places gained (▲2), lost (▼3) or kept (=)."""
    if places is None:
        return DASH
    if places > 0:
        return f"▲{places}"
    if places < 0:
        return f"▼{-places}"
    return "="


def share(value: float, lang: str = "vi") -> str:
    """A share of one as a whole percentage: "45 %" (vi), "45%" (en)."""
    percent = round(value * 100)
    return f"{percent} %" if lang == "vi" else f"{percent}%"
