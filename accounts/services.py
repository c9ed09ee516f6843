"""Account actions shared by the API and the pages: every state change goes through here."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Literal
from uuid import UUID, uuid4

from django.conf import settings
from django.contrib.auth.hashers import check_password, is_password_usable, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email

from accounts import repository as repo
from accounts.identity import Directory, get_directory
from accounts.oidc import Claims, SsoFailure
from accounts.repository import ApiKey, User
from accounts.signals import user_deleted, user_deleting
from accounts.tokens import (
    API_KEY_PREFIX,
    IssuedRefresh,
    RefreshClaims,
    TokenPair,
    decode_access,
    decode_refresh,
    hash_api_key,
    issue_refresh,
    new_api_key,
    new_family,
    pair,
)
from core.audit import record_audit
from core.clock import utcnow
from core.db import IntegrityViolation, Tx, get_database
from core.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotAuthenticated,
    NotFound,
    ValidationFailed,
)

MAX_API_KEYS_PER_USER = 25
MAX_PASSWORD_LENGTH = 256
INVALID_CREDENTIALS = "Email or password is wrong."
PASSWORD_LOGIN_OFF = "Password log-in is switched off on this server; sign in with single sign-on."  # noqa: S105

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Credential:
    """How a request authenticated: a login session (token family) or an API key."""

    kind: Literal["session", "api_key"]
    family: str | None = None
    api_key_id: UUID | None = None


# -- helpers ----------------------------------------------------------------------------


def normalize_email(raw: str) -> str:
    """Trim, lower-case the domain, validate; raise ValidationFailed on the email field."""
    email = raw.strip()
    local, at, domain = email.rpartition("@")
    email = f"{local}{at}{domain.lower()}"
    try:
        if len(email) > 254 or not at:
            raise DjangoValidationError("invalid")
        validate_email(email)
    except DjangoValidationError:
        raise ValidationFailed(fields={"email": "Enter a valid email address."}) from None
    return email


class _PasswordOwner:
    """What Django's similarity validator needs of a user: attributes and field names."""

    class _Meta:
        @staticmethod
        def get_field(name: str) -> SimpleNamespace:
            return SimpleNamespace(verbose_name=name.replace("_", " "))

    _meta = _Meta()

    def __init__(self, email: str) -> None:
        self.email = email


def check_new_password(password: str, email: str) -> None:
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            fields={"password": f"Use at most {MAX_PASSWORD_LENGTH} characters."}
        )
    try:
        validate_password(password, user=_PasswordOwner(email))  # type: ignore[arg-type]
    except DjangoValidationError as exc:
        raise ValidationFailed(fields={"password": " ".join(exc.messages)}) from None


async def hash_password(password: str) -> str:
    # Argon2 releases the GIL: hashing on threads uses both cores and never stalls the loop.
    return await asyncio.to_thread(make_password, password)


async def password_matches(password: str, encoded: str | None) -> bool:
    return await asyncio.to_thread(check_password, password, encoded or _dummy_hash())


@functools.cache
def _dummy_hash() -> str:
    """A real hash to verify against when the email is unknown, so both cases take as long."""
    return make_password(secrets.token_urlsafe(16))


# -- authentication ---------------------------------------------------------------------


def authenticate_bearer(credential: str) -> tuple[User, Credential]:
    """Resolve an access token or API key to its user's *current* state, or raise 401."""
    directory = get_directory()
    if credential.startswith(API_KEY_PREFIX):
        found = directory.api_key(hash_api_key(credential))
        if found is None:
            raise NotAuthenticated("The API key is not valid.", code="invalid_api_key")
        key_id, user_id = found
        user = directory.user(user_id)
        if user is None or not user.is_active:
            raise NotAuthenticated("This account is disabled.", code="account_disabled")
        now = utcnow()
        if directory.note_key_used(key_id, now):
            get_database().write_soon(repo.stamp_api_keys_used, {key_id: now})
        return user, Credential("api_key", api_key_id=key_id)
    user_id, family = decode_access(credential)
    user = directory.user(user_id)
    if user is None or not user.is_active:
        raise NotAuthenticated(
            "This account no longer exists or is disabled.", code="account_disabled"
        )
    if not directory.family_is_live(family):
        raise NotAuthenticated("This session has been signed out.", code="token_revoked")
    return user, Credential("session", family=family)


# -- registration, login, tokens -----------------------------------------------------


async def register_user(email: str, password: str, *, role: str = "user") -> User:
    if not settings.REGISTRATION_OPEN:
        raise Forbidden("Registration is closed on this server.", code="registration_closed")
    if not settings.PASSWORD_LOGIN:  # an account nobody could log in to
        raise Forbidden(PASSWORD_LOGIN_OFF, code="password_login_disabled")
    email = normalize_email(email)
    check_new_password(password, email)
    return await create_user(email, await hash_password(password), role=role)


async def create_user(email: str, password_hash: str, *, role: str) -> User:
    directory = get_directory()

    def insert(tx: Tx) -> User:
        if repo.email_taken(tx, email.lower()):
            raise _email_taken()
        user = repo.insert_user(
            tx, user_id=uuid4(), email=email, password_hash=password_hash, role=role, now=utcnow()
        )
        tx.on_commit(lambda: directory.put_user(user))
        return user

    try:
        return await get_database().awrite(insert)
    except IntegrityViolation:  # the same email, registered by a concurrent transaction
        raise _email_taken() from None


def _email_taken() -> Conflict:
    return Conflict("An account with this email already exists.", code="email_taken")


async def login(email: str, password: str) -> tuple[User, TokenPair]:
    """Check the password and open a new token family; same answer for any wrong input."""
    email_key = email.strip().lower()
    found = await get_database().aread(repo.find_credentials, email_key) if email_key else None
    user, encoded = found if found else (None, None)
    if not await password_matches(password, encoded) or user is None:
        raise NotAuthenticated(INVALID_CREDENTIALS, code="invalid_credentials")
    if not user.is_active:
        raise NotAuthenticated("This account is disabled.", code="account_disabled")
    if not settings.PASSWORD_LOGIN and not await _break_glass(user):
        raise Forbidden(PASSWORD_LOGIN_OFF, code="password_login_disabled")
    return await start_session(user)


async def _break_glass(user: User) -> bool:
    """An admin `createadmin` made may use a password when PASSWORD_LOGIN is off."""
    return user.is_admin and await get_database().aread(repo.may_log_in_with_password, user.id)


async def start_session(user: User) -> tuple[User, TokenPair]:
    directory = get_directory()
    refresh = issue_refresh(user.id, new_family())

    def record(tx: Tx) -> User:
        updated = repo.update_user(tx, user.id, last_login_at=utcnow())
        if updated is None or not updated.is_active:
            raise NotAuthenticated(INVALID_CREDENTIALS, code="invalid_credentials")
        repo.insert_refresh_token(
            tx,
            jti=refresh.jti,
            user_id=user.id,
            family=refresh.family,
            issued_at=refresh.issued_at,
            expires_at=refresh.expires_at,
        )

        def publish() -> None:
            directory.put_user(updated)
            directory.family_started(refresh.family)

        tx.on_commit(publish)
        return updated

    updated = await get_database().awrite(record)
    return updated, pair(updated, refresh)


async def rotate_refresh_token(raw: str) -> TokenPair:
    """Trade a live refresh token for a new pair. A second use of a rotated token revokes
    the whole family: someone else holds a copy."""
    claims = decode_refresh(raw)
    directory = get_directory()
    user = directory.user(claims.user_id)
    if user is None or not user.is_active:
        raise NotAuthenticated("The refresh token is no longer valid.", code="invalid_token")
    successor = issue_refresh(user.id, claims.family)
    rotation = Rotation(claims, successor, directory)
    outcome = await get_database().awrite_batched(rotate_refresh_tokens, rotation)
    if outcome == "reused":
        raise NotAuthenticated(
            "This refresh token was already used, so every session of this login has been "
            "signed out. Log in again.",
            code="token_reused",
        )
    if outcome != "rotated":
        raise NotAuthenticated("The refresh token is no longer valid.", code="invalid_token")
    return pair(user, successor)


@dataclass(frozen=True, slots=True)
class Rotation:
    claims: RefreshClaims
    successor: IssuedRefresh
    directory: Directory


def rotate_refresh_tokens(tx: Tx, rotations: list[Rotation]) -> list[str]:
    """Rotate a burst of refresh tokens with one set-based statement (two on DuckDB); for
    each rotation "rotated", "reused" or "invalid". When one token appears twice in the
    burst, the first wins and the second is a reuse, exactly as if they had arrived one
    after the other."""
    now = utcnow()
    first: dict[str, Rotation] = {}
    for rotation in rotations:
        first.setdefault(rotation.claims.jti, rotation)
    consumed = repo.rotate_refresh_tokens(
        tx,
        {
            jti: (r.successor.jti, r.claims.user_id, r.successor.family, r.successor.issued_at,
                  r.successor.expires_at)
            for jti, r in first.items()
        },
        now,
    )  # fmt: skip
    won = {id(first[jti]) for jti in consumed}
    return [
        "rotated" if id(r) in won else _refused_refresh(tx, r.claims, r.directory, now)
        for r in rotations
    ]


def _refused_refresh(tx: Tx, claims: RefreshClaims, directory: Directory, now: datetime) -> str:
    row = repo.get_refresh_token(tx, claims.jti)
    if row is None and directory.family_is_live(claims.family):
        # A validly signed, unexpired token whose row is gone was purged as revoked; its
        # family is still live, so it was revoked by rotation: a replay, as below.
        repo.revoke_family(tx, claims.family, now)
        tx.on_commit(lambda: directory.families_ended([claims.family]))
        return "reused"
    if row is None or row.user_id != claims.user_id:
        return "invalid"
    if row.revoked_at is not None and row.replaced_by is not None:
        repo.revoke_family(tx, row.family, now)
        tx.on_commit(lambda: directory.families_ended([row.family]))
        return "reused"
    return "invalid"  # expired, or signed out


async def logout(raw: str) -> None:
    """Revoke the token's family (idempotent; an invalid token is simply ignored)."""
    try:
        claims = decode_refresh(raw)
    except ApiError:
        return
    directory = get_directory()

    def revoke(tx: Tx) -> None:
        row = repo.get_refresh_token(tx, claims.jti)
        if row is None or row.user_id != claims.user_id:
            return
        repo.revoke_family(tx, row.family, utcnow())
        tx.on_commit(lambda: directory.families_ended([row.family]))

    await get_database().awrite(revoke)


async def end_session(family: str) -> None:
    """Sign out one login (a browser session) by revoking its token family."""
    directory = get_directory()

    def revoke(tx: Tx) -> None:
        repo.revoke_family(tx, family, utcnow())
        tx.on_commit(lambda: directory.families_ended([family]))

    await get_database().awrite(revoke)


# -- profile ----------------------------------------------------------------------------


async def update_profile(
    user: User,
    *,
    current_password: str,
    email: str | None = None,
    password: str | None = None,
    revoke_api_keys: bool = True,
    ip: str | None = None,
) -> User:
    """Change email and/or password after checking the current password. A new password
    revokes every refresh token of the user, signing out all sessions, and unless
    `revoke_api_keys` is False every API key too: a password change is what people do
    when they fear a leak."""
    encoded = await get_database().aread(repo.password_hash_of, user.id)
    if encoded is None:
        raise NotFound("This account no longer exists.", code="user_not_found")
    changes: dict[str, object] = {}
    if email is not None:
        email = normalize_email(email)
        if email != user.email:
            changes["email"] = email
    if password is not None:
        check_new_password(password, email or user.email)
    if not await password_matches(current_password, encoded):
        raise ValidationFailed(
            "The current password is wrong.",
            fields={"current_password": "The current password is wrong."},
        )
    if password is not None:
        changes["password_hash"] = await hash_password(password)
    if not changes:
        return user
    directory = get_directory()
    password_changed = "password_hash" in changes

    def apply(tx: Tx) -> User:
        new_email = changes.get("email")
        if isinstance(new_email, str) and repo.email_taken(
            tx, new_email.lower(), except_id=user.id
        ):
            raise _email_taken()
        updated = repo.update_user(tx, user.id, **changes)
        if updated is None:
            raise NotFound("This account no longer exists.", code="user_not_found")
        families = repo.revoke_user_tokens(tx, user.id, utcnow()) if password_changed else []
        if password_changed and revoke_api_keys:
            _revoke_all_api_keys(tx, user.id, actor=user, reason="password_changed", ip=ip)

        def publish() -> None:
            directory.put_user(updated)
            directory.families_ended(families)

        tx.on_commit(publish)
        return updated

    try:
        return await get_database().awrite(apply)
    except IntegrityViolation:  # the new email, taken by a concurrent transaction
        raise _email_taken() from None


def _revoke_all_api_keys(tx: Tx, user_id: UUID, *, actor: User, reason: str, ip: str | None) -> int:
    """Delete every API key of the user, audited one by one; the directory forgets them
    after the commit. Returns how many there were."""
    directory = get_directory()
    deleted = repo.delete_api_keys_of_user(tx, user_id)
    for row, _ in deleted:
        record_audit(
            tx,
            action="api_key.revoked",
            actor=actor,
            target_type="api_key",
            target_id=str(row.id),
            target_label=f"{row.name} ({row.prefix})",
            detail={"reason": reason},
            ip=ip,
        )

    def forget() -> None:
        for row, key_hash in deleted:
            directory.drop_key(key_hash, row.id)

    tx.on_commit(forget)
    return len(deleted)


# -- administration ---------------------------------------------------------------------


async def list_users(
    *, query: str, role: str | None, page: int, page_size: int
) -> tuple[list[User], int]:
    return await get_database().aread(
        repo.search_users, query=query, role=role, limit=page_size, offset=(page - 1) * page_size
    )


def _target(tx: Tx, user_id: UUID) -> User:
    target = repo.get_user(tx, user_id)
    if target is None:
        raise NotFound("No such user.", code="user_not_found")
    return target


def _guard_last_admin(tx: Tx, target: User) -> None:
    if target.is_admin and target.is_active and repo.count_admins(tx) <= 1:
        raise Conflict(
            "This is the last active admin; make another admin first.", code="last_admin"
        )


async def set_role(actor: User, user_id: UUID, role: str, *, ip: str | None = None) -> User:
    directory = get_directory()

    def apply(tx: Tx) -> User:
        repo.lock_admin_roster(tx)
        target = _target(tx, user_id)
        if target.role == role:
            return target
        if role != "admin":
            _guard_last_admin(tx, target)
        updated = repo.update_user(tx, user_id, role=role)
        assert updated is not None
        record_audit(
            tx,
            action="user.role_changed",
            actor=actor,
            target_type="user",
            target_id=str(user_id),
            target_label=target.email,
            detail={"from": target.role, "to": role},
            ip=ip,
        )
        tx.on_commit(lambda: directory.put_user(updated))
        return updated

    return await get_database().awrite(apply)


async def set_active(actor: User, user_id: UUID, active: bool, *, ip: str | None = None) -> User:
    """Enable or disable an account. Disabling signs out all its sessions at once and
    revokes its API keys, so enabling it again brings back no credential."""
    if user_id == actor.id and not active:
        raise ValidationFailed("You cannot disable your own account.", code="cannot_disable_self")
    directory = get_directory()

    def apply(tx: Tx) -> User:
        repo.lock_admin_roster(tx)
        target = _target(tx, user_id)
        if target.is_active == active:
            return target
        if not active:
            _guard_last_admin(tx, target)
        updated = repo.update_user(tx, user_id, is_active=active)
        assert updated is not None
        families = repo.revoke_user_tokens(tx, user_id, utcnow()) if not active else []
        if not active:  # gone for good: enabling the account must not revive them
            _revoke_all_api_keys(tx, user_id, actor=actor, reason="account_disabled", ip=ip)
        record_audit(
            tx,
            action="user.enabled" if active else "user.disabled",
            actor=actor,
            target_type="user",
            target_id=str(user_id),
            target_label=target.email,
            ip=ip,
        )

        def publish() -> None:
            directory.put_user(updated)
            directory.families_ended(families)

        tx.on_commit(publish)
        return updated

    return await get_database().awrite(apply)


async def delete_user(actor: User, user_id: UUID, *, ip: str | None = None) -> None:
    """Delete an account with its tokens, keys, history and files, in one transaction.
    Usage records stay, so spend still adds up after the account is gone."""
    if user_id == actor.id:
        raise ValidationFailed("You cannot delete your own account.", code="cannot_delete_self")
    directory = get_directory()

    def apply(tx: Tx) -> None:
        repo.lock_admin_roster(tx)
        target = _target(tx, user_id)
        _guard_last_admin(tx, target)
        families = repo.families_of_user(tx, user_id)
        key_hashes = repo.delete_user(tx, user_id)
        user_deleting.send(sender=delete_user, tx=tx, user_id=user_id)
        record_audit(
            tx,
            action="user.deleted",
            actor=actor,
            target_type="user",
            target_id=str(user_id),
            target_label=target.email,
            detail={"role": target.role, "api_keys": len(key_hashes)},
            ip=ip,
        )
        tx.on_commit(lambda: directory.drop_user(user_id, key_hashes, families))

    await get_database().awrite(apply)
    await asyncio.to_thread(user_deleted.send, sender=delete_user, user_id=user_id)


async def create_or_promote_admin(email: str, password: str | None) -> tuple[User, bool]:
    """For `manage.py createadmin`: (admin, created). An existing user is promoted and,
    if a password is given, gets it."""
    email = normalize_email(email)
    found = await get_database().aread(repo.find_credentials, email.lower())
    if found is None:
        if not password:
            raise ValidationFailed(fields={"password": "A password is needed for a new admin."})
        check_new_password(password, email)
        user = await create_user(email, await hash_password(password), role="admin")
        created = True
    else:
        user, _ = found
        created = False
    directory = get_directory()
    password_hash = await hash_password(password) if password and not created else None

    def promote(tx: Tx) -> User:
        changes: dict[str, object] = {"role": "admin", "is_active": True}
        if password_hash:
            changes["password_hash"] = password_hash
        updated = repo.update_user(tx, user.id, **changes)
        if updated is None:
            raise NotFound("No such user.", code="user_not_found")
        repo.grant_password_login(tx, user.id, utcnow())  # break-glass when PASSWORD_LOGIN is off
        record_audit(
            tx,
            action="admin.created" if created else "admin.promoted",
            actor=None,
            target_type="user",
            target_id=str(user.id),
            target_label=updated.email,
            detail={"via": "manage.py createadmin"},
        )
        tx.on_commit(lambda: directory.put_user(updated))
        return updated

    return await get_database().awrite(promote), created


# -- API keys ---------------------------------------------------------------------------


async def create_api_key(user: User, name: str, *, ip: str | None = None) -> tuple[ApiKey, str]:
    """A new key for the user: (its row, the key itself, which is never shown again)."""
    key, prefix, key_hash = new_api_key()
    directory = get_directory()

    def insert(tx: Tx) -> ApiKey:
        if repo.count_api_keys(tx, user.id) >= MAX_API_KEYS_PER_USER:
            raise Conflict(
                f"You already have {MAX_API_KEYS_PER_USER} API keys; revoke one first.",
                code="too_many_api_keys",
            )
        row = repo.insert_api_key(
            tx,
            key_id=uuid4(),
            user_id=user.id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            now=utcnow(),
        )
        record_audit(
            tx,
            action="api_key.created",
            actor=user,
            target_type="api_key",
            target_id=str(row.id),
            target_label=f"{name} ({prefix})",
            ip=ip,
        )
        tx.on_commit(lambda: directory.put_key(key_hash, row.id, user.id))
        return row

    return await get_database().awrite(insert), key


async def list_api_keys(user: User) -> list[ApiKey]:
    rows = await get_database().aread(repo.list_api_keys, user.id)
    directory = get_directory()
    merged = []
    for row in rows:
        seen = directory.key_last_used(row.id)
        seen_aware = seen.replace(tzinfo=UTC) if seen else None
        if seen_aware and (row.last_used_at is None or seen_aware > row.last_used_at):
            row = ApiKey(row.id, row.user_id, row.name, row.prefix, row.created_at, seen_aware)
        merged.append(row)
    return merged


async def revoke_api_key(user: User, key_id: UUID, *, ip: str | None = None) -> None:
    directory = get_directory()

    def delete(tx: Tx) -> None:
        deleted = repo.delete_api_key(tx, key_id=key_id, user_id=user.id)
        if deleted is None:
            raise NotFound("No such API key.", code="api_key_not_found")
        row, key_hash = deleted
        record_audit(
            tx,
            action="api_key.revoked",
            actor=user,
            target_type="api_key",
            target_id=str(row.id),
            target_label=f"{row.name} ({row.prefix})",
            ip=ip,
        )
        tx.on_commit(lambda: directory.drop_key(key_hash, row.id))

    await get_database().awrite(delete)


# -- single sign-on ---------------------------------------------------------------------


async def has_password(user: User) -> bool:
    """False for an account made by single sign-on: it holds no usable password."""
    encoded = await get_database().aread(repo.password_hash_of, user.id)
    return encoded is not None and is_password_usable(encoded)


def unusable_password() -> str:
    """What an account made by single sign-on holds instead of a password hash."""
    return make_password(None)


def _role_from_groups(groups: tuple[str, ...]) -> str | None:
    """The role the provider's groups give, or None when groups decide nothing here."""
    wanted = set(settings.OIDC_ADMIN_GROUPS)
    if not wanted:
        return None
    return "admin" if wanted & set(groups) else "user"


async def sso_user(claims: Claims, *, ip: str | None = None) -> User:
    """The account a verified OpenID Connect login belongs to: found by (issuer, sub),
    else linked by an email the provider has verified, else created when allowed. The
    admin role follows OIDC_ADMIN_GROUPS at each login. Raises SsoFailure to refuse."""
    if not claims.email_verified:
        # Email is how accounts are told apart here; an unverified one proves nothing.
        raise SsoFailure(
            "Your sign-in provider has not verified your email address, so you were not signed in.",
            "email not verified",
        )
    if claims.email is None:
        raise SsoFailure(
            "Your sign-in provider did not share your email address; ask your administrator "
            "to allow the email scope.",
            "no email claim",
        )
    email = claims.email
    try:
        email = normalize_email(email)
    except ValidationFailed:
        raise SsoFailure(
            "Your sign-in provider sent an email address this server cannot use.",
            "invalid email claim",
        ) from None
    may_create = settings.REGISTRATION_OPEN or settings.OIDC_AUTO_CREATE
    placeholder = await asyncio.to_thread(unusable_password)
    directory = get_directory()

    def resolve(tx: Tx) -> User:
        now = utcnow()
        repo.lock_admin_roster(tx)
        user = repo.user_of_identity(tx, claims.issuer, claims.sub)
        source = {"issuer": claims.issuer, "sub": claims.sub}
        if user is not None:
            repo.stamp_identity_login(
                tx, issuer=claims.issuer, sub=claims.sub, email=email, now=now
            )
        else:
            user = repo.find_user_by_email(tx, email.lower())
            if user is not None:
                repo.insert_identity(
                    tx, issuer=claims.issuer, sub=claims.sub, user_id=user.id, email=email, now=now
                )
                record_audit(
                    tx, action="sso.linked", actor=user, target_type="user",
                    target_id=str(user.id), target_label=user.email, detail=source, ip=ip,
                )  # fmt: skip
            elif may_create:
                role = _role_from_groups(claims.groups) or "user"
                user = repo.insert_user(
                    tx, user_id=uuid4(), email=email, password_hash=placeholder, role=role, now=now
                )
                repo.insert_identity(
                    tx, issuer=claims.issuer, sub=claims.sub, user_id=user.id, email=email, now=now
                )
                record_audit(
                    tx, action="sso.first_login", actor=user, target_type="user",
                    target_id=str(user.id), target_label=user.email,
                    detail={**source, "role": role}, ip=ip,
                )  # fmt: skip
            else:
                raise SsoFailure(
                    "There is no account for you on this server yet; ask an administrator "
                    "to create one.",
                    "no account and registration closed",
                )
        if not user.is_active:
            raise SsoFailure("This account is disabled.", "account disabled")
        user = _apply_group_role(tx, user, claims, ip=ip)
        final = user
        tx.on_commit(lambda: directory.put_user(final))
        return user

    try:
        return await get_database().awrite(resolve)
    except IntegrityViolation:  # the same person's other tab, or the email, just now
        raise SsoFailure(
            "Another sign-in for this account was happening at the same moment; try again.",
            "concurrent first login",
        ) from None


def _apply_group_role(tx: Tx, user: User, claims: Claims, *, ip: str | None) -> User:
    """The role OIDC_ADMIN_GROUPS gives; audited with the signing-in person as the actor
    (their sign-in carried the provider's word) and `via: sso_groups`."""
    role = _role_from_groups(claims.groups)
    if role is None or role == user.role:
        return user
    if role == "user" and user.is_admin and user.is_active and repo.count_admins(tx) <= 1:
        log.warning("kept the admin role of %s: the last active admin", user.id)
        return user
    updated = repo.update_user(tx, user.id, role=role)
    assert updated is not None
    record_audit(
        tx, action="user.role_changed", actor=user, target_type="user", target_id=str(user.id),
        target_label=user.email,
        detail={"from": user.role, "to": role, "via": "sso_groups", "groups_claim": settings.OIDC_GROUPS_CLAIM},
        ip=ip,
    )  # fmt: skip
    return updated
