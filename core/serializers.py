"""Building blocks of the API's shapes: each shape is one DRF serializer that validates (or
renders) and that drf-spectacular reads for the OpenAPI schema."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from core.params import MAX_PAGE, ascii_whole_number

T = TypeVar("T")
S = TypeVar("S", bound="serializers.Serializer[Any]")


# -- input: strict JSON types --------------------------------------------------------------


class StrictSerializer(serializers.Serializer[Any]):
    """Refuses anything but a JSON object, and any field it does not declare."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": ["The body must be a JSON object."]}
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    def run_validators(self, value: Any) -> None:
        # DRF first gathers the read-only fields' defaults for the serializer's own
        # validators (Meta.validators); a serializer without any has nothing to run.
        if self.validators:
            super().run_validators(value)


class _SurrogateCheck(ProhibitSurrogateCharactersValidator):
    """DRF's check, which walks the string in Python (~5 ms for a 100,000-character prompt),
    asked only when the string is not plainly encodable: lone surrogates are exactly what
    UTF-8 refuses to encode, and the C encoder finds them at once."""

    def __call__(self, value: Any) -> None:
        if isinstance(value, str) and (value.isascii() or _encodes(value)):
            return
        super().__call__(value)


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of quietly stringifying them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [
            _SurrogateCheck() if type(v) is ProhibitSurrogateCharactersValidator else v
            for v in self.validators
        ]

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: "false" or 0 must not quietly mean what it seems to."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: no booleans, strings or floats."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictFloatField(serializers.FloatField):
    """A JSON number only: no booleans or strings."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return float(super().to_internal_value(data))


# -- query strings -------------------------------------------------------------------------
# Query serializers are not strict: an unknown parameter (a cache buster) is ignored.
# `@extend_schema(parameters=[SomeQuerySerializer])` documents each field as a parameter.


class QueryIntegerField(serializers.IntegerField):
    """A whole number in a query string: 1 to 18 ASCII digits within [min_value, max_value]
    (core.params); anything else, an empty value included, is a 400 naming the parameter."""

    def __init__(self, *, min_value: int, max_value: int, **kwargs: Any) -> None:
        message = f"Must be a whole number from {min_value} to {max_value}."
        kwargs["error_messages"] = dict.fromkeys(("invalid", "min_value", "max_value"), message)
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)

    def get_value(self, dictionary: Mapping[str, Any]) -> Any:
        # DRF reads an empty form value as "absent"; `?page=` is a wrong number instead.
        return dictionary.get(str(self.field_name), empty)

    def to_internal_value(self, data: Any) -> int:
        value = ascii_whole_number(data) if isinstance(data, str) else None
        if value is None:
            self.fail("invalid")
        return value


class PageQuerySerializer(serializers.Serializer[Any]):
    page = QueryIntegerField(min_value=1, max_value=MAX_PAGE, default=1, help_text="From 1.")
    page_size = QueryIntegerField(
        min_value=1, max_value=100, default=20, help_text="Items per page."
    )


def filter_choice(choices: Sequence[str], **kwargs: Any) -> serializers.ChoiceField:
    """An optional query filter: one of `choices`; absent or empty means no filter."""
    kwargs.setdefault("help_text", "Absent or empty: no filter.")
    return serializers.ChoiceField(choices=choices, required=False, allow_blank=True, **kwargs)


# -- output --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, as `page_of(ItemSerializer)` renders it."""

    items: Sequence[T]
    total: int
    page: int
    page_size: int


def component_name(serializer_class: type[serializers.Serializer[Any]]) -> str:
    """The schema component drf-spectacular names after a serializer class."""
    meta = getattr(serializer_class, "Meta", None)
    name = getattr(meta, "ref_name", None) or serializer_class.__name__
    return str(name).removesuffix("Serializer")


@functools.cache
def page_of(item: type[serializers.Serializer[Any]]) -> type[serializers.Serializer[Page[Any]]]:
    """The serializer of a `Page` of `item`s: {items, total, page, page_size}."""
    name = component_name(item) + "Page"
    attrs: dict[str, Any] = {
        "__module__": item.__module__,
        "__doc__": f"One page of {component_name(item)} items.",
        "items": item(many=True),
        "total": serializers.IntegerField(help_text="Items on all pages."),
        "page": serializers.IntegerField(help_text="This page's number, from 1."),
        "page_size": serializers.IntegerField(help_text="Items per page."),
        "Meta": type("Meta", (), {"ref_name": name}),
    }
    return type(f"{name}Serializer", (serializers.Serializer,), attrs)


class ConstantField(serializers.ChoiceField):
    """An output field that always reads `value`: documented as a one-value enum."""

    def __init__(self, value: str, **kwargs: Any) -> None:
        self.value = value
        super().__init__(choices=(value,), read_only=True, **kwargs)

    def get_attribute(self, instance: Any) -> str:
        return self.value


@functools.cache
def shared(serializer_class: type[S]) -> S:
    """One instance per serializer class, kept for the life of the process.

    DRF copies every declared field into each new instance (~0.2 ms for the chat body); its
    run_validation() and to_representation() keep no state on the instance, so one
    instance serves every request (all of them on the one event loop thread).
    """
    return serializer_class()


def render(serializer_class: type[serializers.Serializer[Any]], instance: Any) -> dict[str, Any]:
    """`instance` (an object or a mapping) in the shape `serializer_class` declares."""
    return dict(shared(serializer_class).to_representation(instance))
