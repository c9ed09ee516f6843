"""`{% openai_base_url %}`: the absolute base URL of the OpenAI-compatible API (<site>/v1)."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

register = template.Library()


@register.simple_tag(takes_context=True)
def openai_base_url(context: dict[str, Any]) -> str:
    models = reverse("openai-models")  # "/v1/models": the base is what precedes "/models"
    return str(context["request"].build_absolute_uri(models.removesuffix("/models")))
