"""Response shapes of the accounts API for the OpenAPI schema (the views render them with
user_json, api_key_json and TokenPair.as_response; a schemathesis run checks they agree)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers

from accounts.repository import ROLES


class UserSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=ROLES)
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    last_login_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "User"


class UserPageSerializer(serializers.Serializer):
    items = UserSerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField(help_text="JWT for `Authorization: Bearer`.")
    refresh_token = serializers.CharField(help_text="Single use: trade it at /api/auth/refresh.")
    token_type = serializers.ChoiceField(choices=("bearer",))
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")

    class Meta:
        ref_name = "TokenPair"


class ApiKeySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The visible start of the key, e.g. agw_3f9a2c1d.")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ApiKey"


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The whole key. Shown this once; store it now.")

    class Meta:
        ref_name = "ApiKeyCreated"


class ApiKeyListSerializer(serializers.Serializer):
    items = ApiKeySerializer(many=True)


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "`Authorization: Bearer <token>` with an access token from "
                "`POST /api/auth/login` (a JWT, 15 minutes) or a personal API key "
                "(`agw_...`, from `POST /api/auth/keys`)."
            ),
        }
