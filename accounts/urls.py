from django.urls import path

from accounts import api, views

api_urlpatterns = [
    path("auth/register", api.RegisterView.as_view(), name="api-register"),
    path("auth/login", api.LoginView.as_view(), name="api-login"),
    path("auth/refresh", api.RefreshView.as_view(), name="api-refresh"),
    path("auth/logout", api.LogoutView.as_view(), name="api-logout"),
    path("auth/keys", api.ApiKeyListView.as_view(), name="api-keys"),
    path("auth/keys/<uuid:key_id>", api.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("users/me", api.MeView.as_view(), name="api-me"),
    path("users", api.UserListView.as_view(), name="api-users"),
    path("users/<uuid:user_id>", api.UserDetailView.as_view(), name="api-user-detail"),
    path("users/<uuid:user_id>/role", api.UserRoleView.as_view(), name="api-user-role"),
    path("users/<uuid:user_id>/active", api.UserActiveView.as_view(), name="api-user-active"),
]

page_urlpatterns = [
    path("register", views.register, name="register"),
    path("login", views.login_page, name="login"),
    path("login/oidc", views.oidc_start, name="oidc-start"),
    path("login/oidc/callback", views.oidc_callback, name="oidc-callback"),
    path("logout", views.logout_page, name="logout"),
    path("profile", views.profile, name="profile"),
    path("profile/keys/<uuid:key_id>/revoke", views.revoke_key, name="revoke-key"),
]
