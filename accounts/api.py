"""JSON API for auth, profile, users and API keys (SPEC §2 "Auth", "Users")."""

from __future__ import annotations

from uuid import UUID

from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from accounts.authentication import request_user
from accounts.permissions import IsAdmin
from accounts.serializers import (
    ActiveSerializer,
    ApiKeyCreateSerializer,
    CredentialsSerializer,
    ProfileUpdateSerializer,
    RefreshSerializer,
    RoleSerializer,
    api_key_json,
    user_json,
)
from aigateway.api import ApiView, client_ip, page_params, paginated, validate
from aigateway.errors import ValidationFailed


class PublicView(ApiView):
    """No credentials needed, and a stray Authorization header is ignored."""

    authentication_classes = []
    permission_classes = [AllowAny]


class RegisterView(PublicView):
    async def post(self, request: Request) -> Response:
        data = validate(CredentialsSerializer, request.data)
        user = await services.register_user(data["email"], data["password"])
        return Response(user_json(user), status=201)


class LoginView(PublicView):
    async def post(self, request: Request) -> Response:
        data = validate(CredentialsSerializer, request.data)
        _, tokens = await services.login(data["email"], data["password"])
        return Response(tokens.as_response())


class RefreshView(PublicView):
    async def post(self, request: Request) -> Response:
        data = validate(RefreshSerializer, request.data)
        tokens = await services.rotate_refresh_token(data["refresh_token"])
        return Response(tokens.as_response())


class LogoutView(PublicView):
    async def post(self, request: Request) -> Response:
        data = validate(RefreshSerializer, request.data)
        await services.logout(data["refresh_token"])
        return Response(status=204)


class MeView(ApiView):
    async def get(self, request: Request) -> Response:
        return Response(user_json(request_user(request)))

    async def put(self, request: Request) -> Response:
        data = validate(ProfileUpdateSerializer, request.data)
        user = await services.update_profile(request_user(request), **data)
        return Response(user_json(user))


class UserListView(ApiView):
    permission_classes = [IsAdmin]

    async def get(self, request: Request) -> Response:
        page, page_size = page_params(request)
        role = request.query_params.get("role") or None
        if role not in (None, "user", "admin"):
            raise ValidationFailed(fields={"role": "Must be 'user' or 'admin'."})
        query = request.query_params.get("q", "")[:320]
        users, total = await services.list_users(
            query=query, role=role, page=page, page_size=page_size
        )
        return Response(
            paginated([user_json(u) for u in users], total=total, page=page, page_size=page_size)
        )


class UserDetailView(ApiView):
    permission_classes = [IsAdmin]

    async def delete(self, request: Request, user_id: UUID) -> Response:
        await services.delete_user(request_user(request), user_id, ip=client_ip(request))
        return Response(status=204)


class UserRoleView(ApiView):
    permission_classes = [IsAdmin]

    async def put(self, request: Request, user_id: UUID) -> Response:
        data = validate(RoleSerializer, request.data)
        user = await services.set_role(
            request_user(request), user_id, data["role"], ip=client_ip(request)
        )
        return Response(user_json(user))


class UserActiveView(ApiView):
    permission_classes = [IsAdmin]

    async def put(self, request: Request, user_id: UUID) -> Response:
        data = validate(ActiveSerializer, request.data)
        user = await services.set_active(
            request_user(request), user_id, data["is_active"], ip=client_ip(request)
        )
        return Response(user_json(user))


class ApiKeyListView(ApiView):
    async def get(self, request: Request) -> Response:
        keys = await services.list_api_keys(request_user(request))
        return Response({"items": [api_key_json(key) for key in keys]})

    async def post(self, request: Request) -> Response:
        data = validate(ApiKeyCreateSerializer, request.data)
        row, key = await services.create_api_key(
            request_user(request), data["name"], ip=client_ip(request)
        )
        return Response({**api_key_json(row), "key": key}, status=201)


class ApiKeyDetailView(ApiView):
    async def delete(self, request: Request, key_id: UUID) -> Response:
        await services.revoke_api_key(request_user(request), key_id, ip=client_ip(request))
        return Response(status=204)
