"""Line images outside the graph, and the rules they share with it: which files are images,
how one is opened (as the graph decodes it) and checked, and the width a line has once
resized to the network's height. This module does not import TensorFlow: importers, the
service and readers without TensorFlow use it; ``tf_crnn.data_handler`` applies the same
width rule to tensors.
"""

from __future__ import annotations

import os

from PIL import Image, UnidentifiedImageError

IMAGE_FORMATS = {"PNG", "JPEG", "BMP", "GIF"}
"""Formats that both Pillow (here) and TensorFlow (in the graph) decode."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
"""File endings of images: those of ``IMAGE_FORMATS`` and TIFF, which is converted to PNG
(by ``open_image``) before the graph reads it."""
TIFF_SUFFIXES = (".tif", ".tiff")


def scaled_width(width, height, target_height: int):
    """Width of a ``width`` x ``height`` image scaled to ``target_height``, aspect ratio kept,
    rounded to the nearest pixel (integer arithmetic, on ints and int32 tensors alike)."""
    return (width * target_height + height // 2) // height


def get_resized_width(width: int, height: int, target_height: int, max_width: int) -> int:
    """Width after resizing to ``target_height`` with the aspect ratio kept; images wider than
    ``max_width`` after resizing are shrunk to ``max_width`` (``data_handler.get_resized_width``
    is the same on tensors)."""
    return max(1, min(scaled_width(width, height, target_height), max_width))


def open_image(path: str | os.PathLike, mode: str = "L") -> Image.Image:
    """Opens an image in ``mode`` (``L`` or ``RGB``) as the graph decodes it
    (``data_handler.decode_image``): an alpha channel (or a transparent palette colour) is
    composited on white paper first; TIFF, which the graph does not decode, is read too
    (its first page)."""
    with Image.open(path) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return image.convert(mode)


def check_image(path: str, decode: bool = True) -> tuple[int, int] | str:
    """``(width, height)`` of a readable image, or the reason it is unusable.

    Args:
        decode: decode the pixels too (catches truncated files); False reads the header only.
    """
    try:
        if os.path.getsize(path) == 0:
            return "image file is empty (0 bytes)"
        with Image.open(path) as image:
            if image.format not in IMAGE_FORMATS:
                return f"image format {image.format} is not supported (use PNG, JPEG, BMP or GIF)"
            if decode:
                image.load()
            width, height = image.size
    except FileNotFoundError:
        return "image file not found"
    except IsADirectoryError:
        return "image path is a directory"
    except UnidentifiedImageError:
        return "not an image file"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return f"image cannot be decoded ({e})"
    return width, height


__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "TIFF_SUFFIXES",
    "check_image",
    "get_resized_width",
    "open_image",
    "scaled_width",
]
