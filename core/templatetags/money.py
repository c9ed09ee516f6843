"""One money format everywhere: `{{ value|usd }}` (HTML) and `{{ value|usd_text }}` (plain).

$1,234.56 and $0.48 from ten cents up, up to four decimals below that ($0.0387, $0.05),
and "< $0.0001" for the tiny amounts a single call often costs. Whenever the shown figure is
rounded, `usd` puts the exact amount in a tooltip.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

SMALLEST = Decimal("0.0001")


def _amount(value: object) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def format_usd(amount: Decimal) -> str:
    sign, size = ("-" if amount < 0 else ""), abs(amount)
    if size == 0:
        return "$0.00"
    if size < SMALLEST:
        return f"< {sign}$0.0001"
    if size >= Decimal("0.1"):
        return f"{sign}${size.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"
    digits = f"{size.quantize(SMALLEST, ROUND_HALF_UP)}".rstrip("0")
    return f"{sign}${digits}{'0' * max(0, 4 - len(digits))}"  # at least two decimals


def exact_usd(amount: Decimal) -> str:
    text = format(amount.normalize(), "f")
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


@register.filter
def usd_text(value: object) -> str:
    amount = _amount(value)
    return "—" if amount is None else format_usd(amount)


@register.filter
def usd(value: object) -> SafeString:
    amount = _amount(value)
    if amount is None:
        return format_html('<span class="money">{}</span>', "—")
    shown, exact = format_usd(amount), exact_usd(amount)
    if Decimal(shown.lstrip("< -$").replace(",", "")) == abs(amount):
        return format_html('<span class="money">{}</span>', shown)
    return format_html('<span class="money" title="{}">{}</span>', exact, shown)
