from __future__ import annotations

from collections.abc import Sequence

from django import forms

from generation.openrouter import ModelInfo
from generation.presets import DEFAULT_LENGTH, LENGTHS
from generation.serializers import ASPECT_RATIOS, IMAGE_SIZES, VIDEO_RESOLUTIONS


def model_choices(models: Sequence[ModelInfo]) -> list[tuple[str, str]]:
    return [(m.id, f"{m.name} ({m.id})" if m.name != m.id else m.id) for m in models]


class ModelPickerForm(forms.Form):
    model = forms.ChoiceField(choices=())

    def __init__(self, *args: object, models: Sequence[ModelInfo] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["model"].choices = model_choices(models)  # type: ignore[attr-defined]


class TextForm(ModelPickerForm):
    prompt = forms.CharField(
        max_length=100_000, strip=False, widget=forms.Textarea(attrs={"rows": 6})
    )
    system_prompt = forms.CharField(
        label="System prompt (optional)", max_length=20_000, required=False, strip=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )  # fmt: skip
    temperature = forms.FloatField(
        min_value=0,
        max_value=2,
        required=False,
        widget=forms.NumberInput(attrs={"step": "0.1", "placeholder": "default"}),
    )
    max_tokens = forms.IntegerField(
        label="Max tokens",
        min_value=1,
        max_value=200_000,
        required=False,
        widget=forms.NumberInput(attrs={"placeholder": "default"}),
    )


class PresetForm(ModelPickerForm):
    """Summarize or shorten a text (generation/presets.py)."""

    text = forms.CharField(
        max_length=100_000, strip=False, widget=forms.Textarea(attrs={"rows": 10})
    )
    length = forms.ChoiceField(
        choices=[(length, length.title()) for length in LENGTHS], initial=DEFAULT_LENGTH
    )


class ImageForm(ModelPickerForm):
    prompt = forms.CharField(max_length=10_000, widget=forms.Textarea(attrs={"rows": 4}))
    aspect_ratio = forms.ChoiceField(
        label="Aspect ratio",
        choices=[("", "default"), *[(r, r) for r in ASPECT_RATIOS]],
        required=False,
    )
    image_size = forms.ChoiceField(
        label="Size", choices=[("", "default"), *[(s, s) for s in IMAGE_SIZES]], required=False
    )


class VideoForm(ModelPickerForm):
    prompt = forms.CharField(max_length=10_000, widget=forms.Textarea(attrs={"rows": 4}))
    duration = forms.IntegerField(
        label="Duration (s)",
        min_value=1,
        max_value=120,
        required=False,
        widget=forms.NumberInput(attrs={"placeholder": "model default"}),
    )
    resolution = forms.ChoiceField(
        choices=[("", "default"), *[(r, r) for r in VIDEO_RESOLUTIONS]], required=False
    )
    aspect_ratio = forms.ChoiceField(
        label="Aspect ratio",
        choices=[("", "default"), *[(r, r) for r in ASPECT_RATIOS]],
        required=False,
    )


class VideoFromImageForm(VideoForm):
    image = forms.FileField(label="First frame (PNG, JPEG or WebP)", required=False)
    image_url = forms.URLField(
        label="…or an image URL", required=False, max_length=2000, assume_scheme="https"
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if bool(data.get("image")) == bool(data.get("image_url")):
            self.add_error("image", "Upload an image or give an image URL (one of the two).")
        return data


class ChatForm(forms.Form):
    content = forms.CharField(
        label="Message",
        max_length=100_000,
        strip=False,
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "placeholder": "Ask anything… (Enter to send, Shift+Enter for a new line)",
            }
        ),
    )


class NewChatForm(ModelPickerForm, ChatForm):
    pass
