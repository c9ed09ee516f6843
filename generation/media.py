"""Generated images and videos on disk, under MEDIA_ROOT/<user id>/<generation id>/."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from uuid import UUID

from django.conf import settings

from generation.repository import MediaFile

EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/webm": "webm",
}


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)


def save_media(
    user_id: UUID, generation_id: UUID, index: int, data: bytes, media_type: str
) -> MediaFile:
    """Write atomically (temp file + rename), so a crash never leaves half a file behind."""
    extension = EXTENSIONS.get(media_type, "bin")
    relative = f"{user_id}/{generation_id}/{index}.{extension}"
    target = media_root() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return MediaFile(file=relative, type=media_type)


def media_path(media: MediaFile) -> Path | None:
    """The file's absolute path, or None if it is missing or would escape MEDIA_ROOT."""
    root = media_root().resolve()
    path = (root / media.file).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path


def remove_user_media(user_id: UUID) -> None:
    shutil.rmtree(media_root() / str(user_id), ignore_errors=True)
