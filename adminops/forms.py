"""Staff forms: limits of a role or a user (decision 40)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from generation.limits import PERIODS, Limits, normalize_patterns
from generation.repository import LimitsRow

PATTERN_HELP = "One model-id pattern per line; * matches any characters: openai/*, *:free."


class LimitsForm(forms.Form):
    """A role's defaults (`inherit=False`) or a user's override (`inherit=True`, where an
    empty field keeps the role's value)."""

    models_mode = forms.ChoiceField(label="Models", widget=forms.RadioSelect)
    allowed_models = forms.CharField(
        label="Allowed model patterns", required=False, help_text=PATTERN_HELP,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
    )  # fmt: skip
    budget_usd = forms.DecimalField(
        label="Budget (USD)", required=False, min_value=Decimal(0), max_digits=15,
        decimal_places=6, widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )  # fmt: skip
    budget_period = forms.ChoiceField(label="Per", required=False)

    def __init__(self, *args: Any, inherit: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inherit = inherit
        first = ("inherit", "As the role") if inherit else ("all", "Every model")
        mode, period = self.fields["models_mode"], self.fields["budget_period"]
        if not isinstance(mode, forms.ChoiceField) or not isinstance(period, forms.ChoiceField):
            raise TypeError("LimitsForm's choice fields")
        mode.choices = [first, ("only", "Only the patterns below")]
        periods = [(p, p) for p in PERIODS]
        period.choices = [("", "as the role"), *periods] if inherit else periods
        self.fields["budget_usd"].help_text = (
            "Empty: the role's budget." if inherit else "Empty: no budget."
        )

    @classmethod
    def of_role(cls, limits: Limits, prefix: str, data: Any = None) -> LimitsForm:
        initial = _initial(limits.allowed_models, limits.budget_usd, limits.budget_period, "all")
        return cls(data, inherit=False, prefix=prefix, initial=initial)

    @classmethod
    def of_user(cls, row: LimitsRow | None, prefix: str, data: Any = None) -> LimitsForm:
        if row is None:
            initial = _initial(None, None, "", "inherit")
        else:
            initial = _initial(
                row.allowed_models, row.budget_usd, row.budget_period or "", "inherit"
            )
        return cls(data, inherit=True, prefix=prefix, initial=initial)

    def clean_allowed_models(self) -> tuple[str, ...]:
        lines = [line for line in self.cleaned_data["allowed_models"].splitlines() if line.strip()]
        try:
            return normalize_patterns(lines)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def changes(self) -> dict[str, Any]:
        """The service's change: every field set (None: every model / no budget / inherit)."""
        data = self.cleaned_data
        only = data["models_mode"] == "only"
        return {
            "allowed_models": data["allowed_models"] if only else None,
            "budget_usd": data["budget_usd"],
            "budget_period": data["budget_period"] or None,
        }


def _initial(
    models: tuple[str, ...] | None, budget: Decimal | None, period: str, open_mode: str
) -> dict[str, Any]:
    return {
        "models_mode": open_mode if models is None else "only",
        "allowed_models": "\n".join(models or ()),
        "budget_usd": format(budget.normalize(), "f") if budget is not None else None,
        "budget_period": period,
    }
