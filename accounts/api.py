"""JSON API for auth, profile, users and API keys (SPEC §2 "Auth", "Users")."""

from __future__ import annotations

from dataclasses import asdict
from uuid import UUID

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from accounts.authentication import request_user
from accounts.permissions import IsAdmin
from accounts.serializers import (
    ActiveSerializer,
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeyListSerializer,
    CredentialsSerializer,
    ProfileUpdateSerializer,
    RefreshSerializer,
    RoleSerializer,
    TokenPairSerializer,
    UserQuerySerializer,
    UserSerializer,
)
from core.api import ApiView, client_ip, validate
from core.openapi import errors
from core.serializers import Page, page_of, render
from core.throttling import rate_limit_scope


class PublicView(ApiView):
    """No credentials needed, and a stray Authorization header is ignored."""

    authentication_classes = []
    permission_classes = [AllowAny]


@rate_limit_scope("auth")
class RegisterView(PublicView):
    @extend_schema(
        tags=["auth"],
        summary="Create an account",
        request=CredentialsSerializer,
        responses={201: UserSerializer, **errors(403, 409)},
    )
    async def post(self, request: Request) -> Response:
        data = validate(CredentialsSerializer, request.data)
        user = await services.register_user(data["email"], data["password"])
        return Response(render(UserSerializer, user), status=201)


@rate_limit_scope("auth")
class LoginView(PublicView):
    @extend_schema(
        tags=["auth"],
        summary="Log in: an access and a refresh token",
        request=CredentialsSerializer,
        responses={200: TokenPairSerializer, **errors(401)},
    )
    async def post(self, request: Request) -> Response:
        data = validate(CredentialsSerializer, request.data)
        _, tokens = await services.login(data["email"], data["password"])
        return Response(render(TokenPairSerializer, tokens))


@rate_limit_scope("auth")
class RefreshView(PublicView):
    @extend_schema(
        tags=["auth"],
        summary="Trade a refresh token for a new pair (reuse revokes the whole login)",
        request=RefreshSerializer,
        responses={200: TokenPairSerializer, **errors(401)},
    )
    async def post(self, request: Request) -> Response:
        data = validate(RefreshSerializer, request.data)
        tokens = await services.rotate_refresh_token(data["refresh_token"])
        return Response(render(TokenPairSerializer, tokens))


class LogoutView(PublicView):
    @extend_schema(
        tags=["auth"],
        summary="Revoke a refresh token's login (idempotent)",
        request=RefreshSerializer,
        responses={204: None},
    )
    async def post(self, request: Request) -> Response:
        data = validate(RefreshSerializer, request.data)
        await services.logout(data["refresh_token"])
        return Response(status=204)


class MeView(ApiView):
    @extend_schema(tags=["users"], summary="Own profile", responses={200: UserSerializer})
    async def get(self, request: Request) -> Response:
        return Response(render(UserSerializer, request_user(request)))

    @extend_schema(
        tags=["users"],
        summary="Change own email and/or password (needs the current password)",
        description=(
            "A new password signs out every session and, unless `revoke_api_keys` is "
            "false, revokes every API key."
        ),
        request=ProfileUpdateSerializer,
        responses={200: UserSerializer, **errors(404, 409)},
    )
    async def put(self, request: Request) -> Response:
        data = validate(ProfileUpdateSerializer, request.data)
        user = await services.update_profile(request_user(request), **data, ip=client_ip(request))
        return Response(render(UserSerializer, user))


class UserListView(ApiView):
    permission_classes = [IsAdmin]

    @extend_schema(
        tags=["users"],
        summary="List users (admin)",
        parameters=[UserQuerySerializer],
        responses={200: page_of(UserSerializer)},
    )
    async def get(self, request: Request) -> Response:
        query = validate(UserQuerySerializer, request.query_params)
        page, page_size = query["page"], query["page_size"]
        users, total = await services.list_users(
            query=query.get("q", ""), role=query.get("role") or None, page=page, page_size=page_size
        )
        return Response(render(page_of(UserSerializer), Page(users, total, page, page_size)))


class UserDetailView(ApiView):
    permission_classes = [IsAdmin]

    @extend_schema(
        tags=["users"],
        summary="Delete a user with their tokens, keys and history (admin; not yourself)",
        responses={204: None, **errors(400, 409)},
    )
    async def delete(self, request: Request, user_id: UUID) -> Response:
        await services.delete_user(request_user(request), user_id, ip=client_ip(request))
        return Response(status=204)


class UserRoleView(ApiView):
    permission_classes = [IsAdmin]

    @extend_schema(
        tags=["users"],
        summary="Change a user's role (admin; the last admin stays)",
        request=RoleSerializer,
        responses={200: UserSerializer, **errors(409)},
    )
    async def put(self, request: Request, user_id: UUID) -> Response:
        data = validate(RoleSerializer, request.data)
        user = await services.set_role(
            request_user(request), user_id, data["role"], ip=client_ip(request)
        )
        return Response(render(UserSerializer, user))


class UserActiveView(ApiView):
    permission_classes = [IsAdmin]

    @extend_schema(
        tags=["users"],
        summary="Enable or disable an account (admin)",
        description=(
            "Disabling signs the account out everywhere and revokes its API keys; enabling "
            "it again brings none of them back."
        ),
        request=ActiveSerializer,
        responses={200: UserSerializer, **errors(409)},
    )
    async def put(self, request: Request, user_id: UUID) -> Response:
        data = validate(ActiveSerializer, request.data)
        user = await services.set_active(
            request_user(request), user_id, data["is_active"], ip=client_ip(request)
        )
        return Response(render(UserSerializer, user))


class ApiKeyListView(ApiView):
    @extend_schema(tags=["api keys"], summary="Own API keys", responses={200: ApiKeyListSerializer})
    async def get(self, request: Request) -> Response:
        keys = await services.list_api_keys(request_user(request))
        return Response(render(ApiKeyListSerializer, {"items": keys}))

    @extend_schema(
        tags=["api keys"],
        summary="Create an API key (the key is shown once)",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer, **errors(409)},
    )
    async def post(self, request: Request) -> Response:
        data = validate(ApiKeyCreateSerializer, request.data)
        row, key = await services.create_api_key(
            request_user(request), data["name"], ip=client_ip(request)
        )
        return Response(render(ApiKeyCreatedSerializer, {**asdict(row), "key": key}), status=201)


class ApiKeyDetailView(ApiView):
    @extend_schema(tags=["api keys"], summary="Revoke an own API key", responses={204: None})
    async def delete(self, request: Request, key_id: UUID) -> Response:
        await services.revoke_api_key(request_user(request), key_id, ip=client_ip(request))
        return Response(status=204)
