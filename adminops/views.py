"""Staff pages: users, stats with charts, database health, token purge, audit log (SPEC §3)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts import services as accounts
from accounts.decorators import admin_required
from accounts.identity import get_directory
from accounts.sessions import PageRequest, current_user
from adminops import services
from adminops.forms import LimitsForm
from core.api import client_ip
from core.errors import ApiError
from core.params import page_number
from generation import services as generation
from generation.limits import ROLES, limit_rules, set_role_limits, set_user_limits

USERS_PAGE_SIZE = 25
AUDIT_PAGE_SIZE = 50


def _pages(total: int, size: int) -> int:
    return max(1, -(-total // size))


@admin_required
@require_GET
async def users(request: PageRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:320]
    role = request.GET.get("role") if request.GET.get("role") in ("user", "admin") else None
    page = page_number(request.GET)
    rows, total = await accounts.list_users(
        query=query, role=role, page=page, page_size=USERS_PAGE_SIZE
    )
    try:
        spends = {row.user.id: row for row in await generation.spend_overview(rows)}
    except ApiError:  # the limits cannot be read now: the list still shows
        spends = {}
    return render(
        request, "adminops/users.html",
        {"users": [(user, spends.get(user.id)) for user in rows], "total": total, "q": query,
         "role": role, "page": page, "pages": _pages(total, USERS_PAGE_SIZE),
         "me": current_user(request)},
    )  # fmt: skip


def _back_to_users(request: PageRequest) -> HttpResponseRedirect:
    query = request.POST.get("return", "")
    return HttpResponseRedirect(reverse("admin-users") + (f"?{query}" if query else ""))


@admin_required
@require_POST
async def change_role(request: PageRequest, user_id: UUID) -> HttpResponse:
    role = request.POST.get("role", "")
    if role not in ("user", "admin"):
        messages.error(request, "Choose the role user or admin.")
        return _back_to_users(request)
    try:
        user = await accounts.set_role(current_user(request), user_id, role, ip=client_ip(request))
    except ApiError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{user.email} is now {user.role}.")
    return _back_to_users(request)


@admin_required
@require_POST
async def change_active(request: PageRequest, user_id: UUID) -> HttpResponse:
    active = request.POST.get("active") == "true"
    try:
        user = await accounts.set_active(
            current_user(request), user_id, active, ip=client_ip(request)
        )
    except ApiError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"{user.email} is enabled; API keys revoked when it was disabled stay revoked."
            if active
            else f"{user.email} is disabled, signed out everywhere, and its API keys are revoked.",
        )
    return _back_to_users(request)


@admin_required
@require_POST
async def delete_user(request: PageRequest, user_id: UUID) -> HttpResponse:
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the confirmation box to delete an account.")
        return _back_to_users(request)
    try:
        await accounts.delete_user(current_user(request), user_id, ip=client_ip(request))
    except ApiError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The account and everything it owned were deleted.")
    return _back_to_users(request)


@admin_required
@require_GET
async def stats(request: PageRequest) -> HttpResponse:
    report = await services.collect_stats()
    return render(request, "adminops/stats.html", {"stats": report, "charts": _charts(report)})


def _charts(report: services.Stats) -> dict[str, Any]:
    """Chart geometry computed here, so templates draw SVG without inline styles.

    Every cost bar (by kind, by model, by user) shares one scale, the period's total cost,
    so equal lengths mean equal money across the three lists. Each daily chart is scaled
    to its own busiest day, which its label names.
    """
    total_cost = report.total.cost or 1

    def share(cost: float) -> str:
        return f"{min(100.0, 100 * cost / total_cost):.1f}"

    def columns(field: str) -> dict[str, Any]:
        values = [getattr(day, field) for day in report.by_day]
        peak = max(values, default=0)
        bars = []
        for index, (day, value) in enumerate(zip(report.by_day, values, strict=True)):
            height = 100 * value / peak if peak else 0
            bars.append({"day": day.key, "value": value, "x": f"{index + 0.12:.2f}",
                         "y": f"{100 - height:.1f}", "height": f"{height:.1f}"})  # fmt: skip
        return {"bars": bars, "peak": peak, "count": len(bars)}

    return {
        "cost_by_day": columns("cost"),
        "generations_by_day": columns("generations"),
        "by_kind": [{"row": r, "pct": share(r.cost)} for r in report.by_kind],
        "by_model": [{"row": r, "pct": share(r.cost)} for r in report.by_model],
        "users": [
            {"row": u.breakdown, "pct": share(u.breakdown.cost), "email": u.email}
            for u in report.top_users
        ],
    }


@admin_required
@require_GET
async def health(request: PageRequest) -> HttpResponse:
    return render(request, "adminops/health.html", {"health": await services.database_health()})


@admin_required
async def tokens(request: PageRequest) -> HttpResponse:
    if request.method == "POST":
        count = await services.purge_refresh_tokens(current_user(request), ip=client_ip(request))
        messages.success(
            request, f"Purged {count} expired or revoked refresh token{'s' if count != 1 else ''}."
        )
        return redirect("admin-tokens")
    report = await services.collect_stats(days=1)
    return render(request, "adminops/tokens.html", {"tokens": report.tokens})


@admin_required
@require_GET
async def audit(request: PageRequest) -> HttpResponse:
    actor = request.GET.get("actor", "").strip()[:320] or None
    action = request.GET.get("action", "").strip()[:100] or None
    page = page_number(request.GET)
    entries, total = await services.audit_log(
        actor=actor, action=action, target=None, page=page, page_size=AUDIT_PAGE_SIZE
    )
    return render(
        request, "adminops/audit.html",
        {"entries": entries, "total": total, "actor": actor or "", "action": action or "",
         "page": page, "pages": _pages(total, AUDIT_PAGE_SIZE)},
    )  # fmt: skip


@admin_required
@require_GET
async def index(request: PageRequest) -> HttpResponse:
    return redirect("admin-users")


# -- limits (decision 40) ---------------------------------------------------------------


async def _limits_page(
    request: PageRequest, bound: dict[str, LimitsForm] | None = None, status: int = 200
) -> HttpResponse:
    """Role defaults and every user's limits and spend; `bound` holds a form that failed."""
    bound = bound or {}
    query = request.GET.get("q", "")[:320]
    page = page_number(request.GET)
    rows, total = await accounts.list_users(
        query=query, role=None, page=page, page_size=USERS_PAGE_SIZE
    )
    rules = await limit_rules()
    role_forms = [
        (role, bound.get(f"role-{role}") or LimitsForm.of_role(rules.role(role), f"role-{role}"))
        for role in ROLES
    ]
    people = [
        (row, bound.get(f"user-{row.user.id}")
         or LimitsForm.of_user(rules.override(row.user.id), f"user-{row.user.id}"))
        for row in await generation.spend_overview(rows)
    ]  # fmt: skip
    context = {
        "role_forms": role_forms, "people": people, "total": total, "q": query, "page": page,
        "pages": _pages(total, USERS_PAGE_SIZE), "open": next(iter(bound), None),
    }  # fmt: skip
    return render(request, "adminops/limits.html", context, status=status)


@admin_required
@require_GET
async def limits_page(request: PageRequest) -> HttpResponse:
    return await _limits_page(request)


def _back_to_limits(request: PageRequest) -> HttpResponseRedirect:
    query = request.POST.get("return", "")
    return HttpResponseRedirect(reverse("admin-limits") + (f"?{query}" if query else ""))


@admin_required
@require_POST
async def change_role_limits(request: PageRequest, role: str) -> HttpResponse:
    if role not in ROLES:
        raise Http404
    rules = await limit_rules()
    form = LimitsForm.of_role(rules.role(role), f"role-{role}", request.POST)
    if not form.is_valid():
        return await _limits_page(request, {f"role-{role}": form}, status=400)
    await set_role_limits(current_user(request), role, form.changes(), ip=client_ip(request))
    messages.success(request, f"The {role} role's limits were saved.")
    return _back_to_limits(request)


@admin_required
@require_POST
async def change_user_limits(request: PageRequest, user_id: UUID) -> HttpResponse:
    user = get_directory().user(user_id)
    if user is None:
        messages.error(request, "That account no longer exists.")
        return _back_to_limits(request)
    rules = await limit_rules()
    prefix = f"user-{user_id}"
    form = LimitsForm.of_user(rules.override(user_id), prefix, request.POST)
    if not form.is_valid():
        return await _limits_page(request, {prefix: form}, status=400)
    await set_user_limits(current_user(request), user, form.changes(), ip=client_ip(request))
    messages.success(request, f"The limits of {user.email} were saved.")
    return _back_to_limits(request)
