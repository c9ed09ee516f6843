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

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "email" not in attrs and "password" not in attrs:
            raise serializers.ValidationError("Send a new email and/or a new password.")
        return attrs


class RoleSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=ROLES)


class ActiveSerializer(StrictSerializer):
    is_active = serializers.BooleanField()

    def to_internal_value(self, data: Any) -> Any:
        # JSON booleans only: "false" or 0 must not quietly disable an account.
        if (
            isinstance(data, dict)
            and "is_active" in data
            and not isinstance(data["is_active"], bool)
        ):
            raise serializers.ValidationError({"is_active": ["Must be true or false."]})
        return super().to_internal_value(data)


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
