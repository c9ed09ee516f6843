from django.urls import include, path

from accounts.urls import api_urlpatterns as accounts_api
from aigateway import health
from generation.urls import api_urlpatterns as generation_api

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/", include(accounts_api)),
    path("api/", include(generation_api)),
    path("api/ping", health.ping, name="api-ping"),
]

handler400 = "aigateway.api.bad_request"
handler404 = "aigateway.api.not_found"
handler500 = "aigateway.api.server_error"
