from django.urls import path

from adminops import api

api_urlpatterns = [
    path("stats", api.StatsView.as_view(), name="api-admin-stats"),
    path("health/db", api.DatabaseHealthView.as_view(), name="api-admin-health-db"),
    path("tokens/purge", api.TokenPurgeView.as_view(), name="api-admin-tokens-purge"),
    path("audit", api.AuditLogView.as_view(), name="api-admin-audit"),
    path("backup", api.BackupView.as_view(), name="api-admin-backup"),
]
