"""Template filters for model output: `{{ text|markdown }}`, `{{ job.status|status_label }}`."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from generation.markdown import render_markdown

register = template.Library()


@register.filter
def markdown(text: str | None) -> SafeString:
    return render_markdown(text)


@register.filter
def status_label(status: str | None) -> str:
    """OpenRouter's `in_progress` as people write it: "in progress"."""
    return (status or "pending").replace("_", " ")
