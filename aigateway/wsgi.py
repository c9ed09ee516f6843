"""WSGI entry point, for tooling only: serve with the ASGI app (one process, see README)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aigateway.settings")
application = get_wsgi_application()
