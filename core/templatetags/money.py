"""`{{ value|usd }}`: dollars with as many decimals as a small AI bill needs."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def usd(value: object) -> str:
    if value is None or value == "":
        return "—"
    try:
        amount = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    if amount == 0:
        return "$0"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    if abs(amount) >= 0.01:
        return f"${amount:.4f}"
    return f"${amount:.6f}".rstrip("0")
