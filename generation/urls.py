from django.urls import path

from generation import api

api_urlpatterns = [
    path("ai/models", api.ModelListView.as_view(), name="api-models"),
    path("ai/chat", api.ChatView.as_view(), name="api-chat"),
    path("generate/text", api.TextView.as_view(), name="api-generate-text"),
    path("generate/image", api.ImageView.as_view(), name="api-generate-image"),
    path("generate/video", api.VideoView.as_view(), name="api-generate-video"),
    path(
        "generate/video/from-image",
        api.VideoFromImageView.as_view(),
        name="api-generate-video-from-image",
    ),
    path("generate/video/status", api.VideoStatusView.as_view(), name="api-video-status"),
    path("generate/video/<uuid:job_id>", api.VideoJobView.as_view(), name="api-video-job"),
    path(
        "generate/video/<uuid:job_id>/content",
        api.VideoContentView.as_view(),
        name="api-video-content",
    ),
    path("generations", api.GenerationListView.as_view(), name="api-generations"),
    path(
        "generations/<uuid:generation_id>",
        api.GenerationDetailView.as_view(),
        name="api-generation",
    ),
    path(
        "generations/<uuid:generation_id>/media/<int:index>",
        api.MediaView.as_view(),
        name="api-media",
    ),
]
