from django.urls import path

from generation import api, views

api_urlpatterns = [
    path("ai/models", api.ModelListView.as_view(), name="api-models"),
    path("ai/chat", api.ChatView.as_view(), name="api-chat"),
    path("generate/text", api.TextView.as_view(), name="api-generate-text"),
    path("generate/summarize", api.SummarizeView.as_view(), name="api-generate-summarize"),
    path("generate/shorten", api.ShortenView.as_view(), name="api-generate-shorten"),
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

page_urlpatterns = [
    path("", views.home, name="home"),
    path("generate", views.generate_index, name="generate"),
    path("generate/text", views.generate_text, name="generate-text"),
    path("generate/image", views.generate_image, name="generate-image"),
    path("generate/video", views.generate_video, name="generate-video"),
    path("generate/video/<uuid:job_id>", views.video_job_page, name="video-job"),
    path("generate/video/<uuid:job_id>/status", views.video_job_status, name="video-job-status"),
    path("generate/video/<uuid:job_id>/file", views.video_file_page, name="video-file"),
    path("media/<uuid:generation_id>/<int:index>", views.media, name="media"),
    path("history", views.history, name="history"),
    path("chat", views.chat_page, name="chat"),
    path("chat/stream", views.chat_stream, name="chat-stream-new"),
    path("chat/send", views.chat_send, name="chat-send-new"),
    path("chat/<uuid:conversation_id>", views.chat_page, name="chat-conversation"),
    path("chat/<uuid:conversation_id>/stream", views.chat_stream, name="chat-stream"),
    path("chat/<uuid:conversation_id>/send", views.chat_send, name="chat-send"),
    path("chat/<uuid:conversation_id>/delete", views.chat_delete, name="chat-delete"),
]
