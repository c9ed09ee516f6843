from django.urls import path, re_path

from generation.openai_api import api, errors

urlpatterns = [
    path("models", api.ModelListView.as_view(), name="openai-models"),
    # Model ids contain a slash; the SDK sends it percent-encoded and the ASGI server
    # decodes it, so the path converter sees "openai/gpt-4o-mini".
    path("models/<path:model_id>", api.ModelDetailView.as_view(), name="openai-model"),
    path("chat/completions", api.ChatCompletionsView.as_view(), name="openai-chat-completions"),
    path("embeddings", api.EmbeddingsView.as_view(), name="openai-embeddings"),
    path(
        "images/generations",
        api.ImageGenerationsView.as_view(),
        name="openai-images-generations",
    ),
    re_path(r"^(?P<path>.*)$", errors.not_found, name="openai-not-found"),
]
