from django.apps import AppConfig


class AdminopsConfig(AppConfig):
    name = "adminops"
    default_auto_field = "django.db.models.BigAutoField"
