from typing import Any
from uuid import UUID

from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.signals import user_deleted, user_deleting

        user_deleting.connect(_delete_user_content, dispatch_uid="generation.user_content")
        user_deleted.connect(_remove_user_media, dispatch_uid="generation.user_media")


def _delete_user_content(sender: Any, *, tx: Any, user_id: UUID, **kwargs: Any) -> None:
    from generation.limits import limits_changed
    from generation.repository import delete_user_content

    delete_user_content(tx, user_id)
    tx.on_commit(lambda: limits_changed(str(user_id)))


def _remove_user_media(sender: Any, *, user_id: UUID, **kwargs: Any) -> None:
    from generation.media import remove_user_media

    remove_user_media(user_id)
