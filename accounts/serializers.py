from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.repository import ROLES, ApiKey, User
from core.api import StrictCharField, StrictSerializer
from core.clock import iso


class CredentialsSerializer(StrictSerializer):
    email = StrictCharField(max_length=320)
    password = StrictCharField(max_length=1024, trim_whitespace=False)


class RefreshSerializer(StrictSerializer):
    refresh_token = StrictCharField(max_length=4096)


class ProfileUpdateSerializer(StrictSerializer):
    email = StrictCharField(max_length=320, required=False)
    password = StrictCharField(max_length=1024, required=False, trim_whitespace=False)
    current_password = StrictCharField(max_length=1024, trim_whitespace=False)
    revoke_api_keys = serializers.BooleanField(
        required=False,
        default=True,
        help_text="With a new password: also revoke every API key (default true).",
    )

    def to_internal_value(self, data: Any) -> Any:
        _refuse_non_boolean(data, "revoke_api_keys")
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "email" not in attrs and "password" not in attrs:
            raise serializers.ValidationError("Send a new email and/or a new password.")
        return attrs


class RoleSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=ROLES)


class ActiveSerializer(StrictSerializer):
    is_active = serializers.BooleanField()

    def to_internal_value(self, data: Any) -> Any:
        _refuse_non_boolean(data, "is_active")
        return super().to_internal_value(data)


def _refuse_non_boolean(data: Any, name: str) -> None:
    """JSON booleans only: "false" or 0 must not quietly mean what it seems to."""
    if isinstance(data, dict) and name in data and not isinstance(data[name], bool):
        raise serializers.ValidationError({name: ["Must be true or false."]})


class ApiKeyCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100, min_length=1)


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": iso(user.created_at),
        "last_login_at": iso(user.last_login_at),
    }


def api_key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
    }
