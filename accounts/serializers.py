"""The accounts API's shapes: each serializer validates or renders its shape and is what the
OpenAPI schema shows for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from accounts.repository import ROLES, ApiKey, User
from accounts.tokens import TokenPair
from core.serializers import (
    ConstantField,
    PageQuerySerializer,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
    filter_choice,
)

# -- requests ------------------------------------------------------------------------------


class CredentialsSerializer(StrictSerializer):
    email = StrictCharField(max_length=320)
    password = StrictCharField(max_length=1024, trim_whitespace=False)


class RefreshSerializer(StrictSerializer):
    refresh_token = StrictCharField(max_length=4096)


class ProfileUpdateSerializer(StrictSerializer):
    email = StrictCharField(max_length=320, required=False)
    password = StrictCharField(max_length=1024, required=False, trim_whitespace=False)
    current_password = StrictCharField(max_length=1024, trim_whitespace=False)
    revoke_api_keys = StrictBooleanField(
        required=False,
        default=True,
        help_text="With a new password: also revoke every API key (default true).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "email" not in attrs and "password" not in attrs:
            raise serializers.ValidationError("Send a new email and/or a new password.")
        return attrs


class RoleSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=ROLES)


class ActiveSerializer(StrictSerializer):
    # JSON booleans only: "false" or 0 must not quietly disable an account.
    is_active = StrictBooleanField()


class ApiKeyCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100, min_length=1)


class UserQuerySerializer(PageQuerySerializer):
    q = serializers.CharField(
        required=False, allow_blank=True, max_length=320, help_text="Part of an email."
    )
    role = filter_choice(ROLES)


# -- responses -----------------------------------------------------------------------------


class UserSerializer(serializers.Serializer[User]):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=ROLES)
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    last_login_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "User"


class TokenPairSerializer(serializers.Serializer[TokenPair]):
    access_token = serializers.CharField(help_text="JWT for `Authorization: Bearer`.")
    refresh_token = serializers.CharField(help_text="Single use: trade it at /api/auth/refresh.")
    token_type = ConstantField("bearer")
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")

    class Meta:
        ref_name = "TokenPair"


class ApiKeySerializer(serializers.Serializer[ApiKey]):
    id = serializers.UUIDField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The visible start of the key, e.g. agw_3f9a2c1d.")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ApiKey"


class ApiKeyCreatedSerializer(ApiKeySerializer):
    # Renders a new key's row (as a mapping) with, this once, the whole key.
    key = serializers.CharField(help_text="The whole key. Shown this once; store it now.")

    class Meta:
        ref_name = "ApiKeyCreated"


class ApiKeyListSerializer(serializers.Serializer[Mapping[str, Any]]):
    items = ApiKeySerializer(many=True)
