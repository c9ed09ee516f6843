"""Form helpers shared by every app's pages."""

from __future__ import annotations

from django import forms

from core.errors import ApiError


def apply_api_error(form: forms.Form, error: ApiError) -> None:
    """Show a service's error next to the fields it names, or above the form."""
    placed = False
    for name, message in error.fields.items():
        if name in form.fields:
            form.add_error(name, message)
            placed = True
    if not placed:
        form.add_error(None, error.message)
