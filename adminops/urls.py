from django.urls import path

from adminops import api, views

api_urlpatterns = [
    path("stats", api.StatsView.as_view(), name="api-admin-stats"),
    path("health/db", api.DatabaseHealthView.as_view(), name="api-admin-health-db"),
    path("tokens/purge", api.TokenPurgeView.as_view(), name="api-admin-tokens-purge"),
    path("audit", api.AuditLogView.as_view(), name="api-admin-audit"),
    path("backup", api.BackupView.as_view(), name="api-admin-backup"),
    path("limits", api.LimitsView.as_view(), name="api-admin-limits"),
    path("limits/roles/<str:role>", api.RoleLimitsView.as_view(), name="api-admin-role-limits"),
]

page_urlpatterns = [
    path("admin/", views.index, name="admin"),
    path("admin/users", views.users, name="admin-users"),
    path("admin/users/<uuid:user_id>/role", views.change_role, name="admin-user-role"),
    path("admin/users/<uuid:user_id>/active", views.change_active, name="admin-user-active"),
    path("admin/users/<uuid:user_id>/delete", views.delete_user, name="admin-user-delete"),
    path("admin/stats", views.stats, name="admin-stats"),
    path("admin/health", views.health, name="admin-health"),
    path("admin/tokens", views.tokens, name="admin-tokens"),
    path("admin/audit", views.audit, name="admin-audit"),
    path("admin/limits", views.limits_page, name="admin-limits"),
    path("admin/limits/roles/<str:role>", views.change_role_limits, name="admin-limits-role"),
    path("admin/limits/users/<uuid:user_id>", views.change_user_limits, name="admin-limits-user"),
]
