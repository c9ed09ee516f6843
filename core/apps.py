from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # There is no ORM database, so the per-request connection housekeeping has nothing
        # to do; under ASGI each of these sync receivers would still cost a thread hop.
        from django.core import signals
        from django.db import close_old_connections, reset_queries

        signals.request_started.disconnect(reset_queries)
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
