from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.urls import api_urlpatterns as accounts_api
from accounts.urls import page_urlpatterns as accounts_pages
from adminops.urls import api_urlpatterns as adminops_api
from adminops.urls import page_urlpatterns as adminops_pages
from core import health
from generation.openai_api.urls import urlpatterns as openai_api
from generation.urls import api_urlpatterns as generation_api
from generation.urls import page_urlpatterns as generation_pages

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/", include(accounts_api)),
    path("api/", include(generation_api)),
    path("api/admin/", include(adminops_api)),
    path("api/ping", health.ping, name="api-ping"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("v1/", include(openai_api)),
    path("", include(accounts_pages)),
    path("", include(generation_pages)),
    path("", include(adminops_pages)),
]

handler400 = "core.api.bad_request"
handler404 = "core.api.not_found"
handler500 = "core.api.server_error"
