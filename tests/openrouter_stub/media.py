"""Synthetic media the stub hands out: small real PNGs (pure stdlib) and a tiny real video."""

from __future__ import annotations

import base64
import struct
import zlib
from functools import cache
from pathlib import Path

SAMPLE_VIDEO_PATH = Path(__file__).with_name("sample.mp4")
IMAGE_SIZE = 64

# Distinct colours so different prompts visibly give different images.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (231, 76, 60),
    (46, 204, 113),
    (52, 152, 219),
    (241, 196, 15),
    (155, 89, 182),
    (26, 188, 156),
    (230, 126, 34),
    (52, 73, 94),
)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def make_png(color: tuple[int, int, int], size: int = IMAGE_SIZE) -> bytes:
    """An RGB PNG: diagonal stripes of `color` on white, so it reads as a picture."""
    red, green, blue = color
    stripe = bytes((red, green, blue))
    blank = b"\xff\xff\xff"
    rows = []
    for y in range(size):
        pixels = b"".join(stripe if (x + y) // 8 % 2 == 0 else blank for x in range(size))
        rows.append(b"\x00" + pixels)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


@cache
def png_base64(index: int) -> str:
    """Raw base64 of palette image `index` (the Image API's `b64_json`)."""
    return base64.b64encode(make_png(PALETTE[index % len(PALETTE)])).decode("ascii")


@cache
def png_data_url(index: int) -> str:
    """`data:image/png;base64,...` (chat completions' `message.images[].image_url.url`)."""
    return "data:image/png;base64," + png_base64(index)


def palette_index(seed_text: str) -> int:
    """A stable palette slot for a prompt (no `hash()`: it is salted per process)."""
    return zlib.crc32(seed_text.encode()) % len(PALETTE)


@cache
def sample_video() -> bytes:
    """The bundled clip: VP9 video in an MP4 container, about 2 s, plays in Chromium."""
    return SAMPLE_VIDEO_PATH.read_bytes()
