"""Line images outside the graph, and the rules they share with it: which files are images,
how one is opened (as the graph decodes it) and checked, and the width a line has once
resized to the network's height. This module does not import TensorFlow: importers, the
service and readers without TensorFlow use it; ``tf_crnn.training.pipeline`` applies the same
width rule to tensors.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

IMAGE_FORMATS = {"PNG", "JPEG", "BMP", "GIF"}
"""Formats that both Pillow (here) and TensorFlow (in the graph) decode."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
"""File endings of images: those of ``IMAGE_FORMATS`` and TIFF, which is converted to PNG
(by ``open_image``) before the graph reads it."""
TIFF_SUFFIXES = (".tif", ".tiff")
GRAPH_MAX_PIXELS = 4_000_000
"""Images with more pixels are shrunk here (``open_for_graph``) before the graph decodes them:
decoded whole in the graph, a 40-megapixel line would take gigabytes to be resized to 48 px."""


def scaled_width(width, height, target_height: int):
    """Width of a ``width`` x ``height`` image scaled to ``target_height``, aspect ratio kept,
    rounded to the nearest pixel (integer arithmetic, on ints and int32 tensors alike)."""
    return (width * target_height + height // 2) // height


def get_resized_width(width: int, height: int, target_height: int, max_width: int) -> int:
    """Width after resizing to ``target_height`` with the aspect ratio kept; images wider than
    ``max_width`` after resizing are shrunk to ``max_width`` (``image_converter.get_resized_width``
    is the same on tensors)."""
    return max(1, min(scaled_width(width, height, target_height), max_width))


def open_image(path: str | os.PathLike, mode: str = "L", upright: bool = False) -> Image.Image:
    """Opens an image in ``mode`` (``L`` or ``RGB``) as the graph decodes it
    (``image_converter.decode_image``): an alpha channel (or a transparent palette colour) is
    composited on white paper first; TIFF, which the graph does not decode, is read too
    (its first page). ``upright``: turned as its EXIF orientation says, as viewers show it
    (the graph ignores the tag; pages, which only the host reads, are turned)."""
    with Image.open(path) as image:
        image.load()
        if upright:  # in place: a page without the tag is not copied
            ImageOps.exif_transpose(image, in_place=True)
        if image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return image.convert(mode)


def upright_size(path: str | os.PathLike) -> tuple[int, int]:
    """The size of the image ``open_image(path, upright=True)`` gives, from its header alone: a
    quarter turn by its EXIF orientation (5 to 8) swaps the sides; no pixel is decoded."""
    with Image.open(path) as image:
        width, height = image.size
        turned = image.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)
    return (height, width) if turned else (width, height)


def needs_host_decoding(path: str | os.PathLike, size: tuple[int, int], image_format: str | None) -> bool:
    """Whether the graph should read a copy made by ``open_for_graph`` rather than the file:
    TIFF (which it does not decode), GIF (whose every frame it would decode) and images over
    ``GRAPH_MAX_PIXELS``."""
    return Path(path).suffix.lower() in TIFF_SUFFIXES or image_format == "GIF" or size[0] * size[1] > GRAPH_MAX_PIXELS


def open_for_graph(path: str | os.PathLike, mode: str, target_height: int) -> Image.Image:
    """The image the graph should read in place of ``path`` (``needs_host_decoding``): its first
    frame only, decoded at a reduced scale where the format allows it (JPEG), and shrunk by an
    integer factor (averaging boxes) to at most ``GRAPH_MAX_PIXELS`` and no less than twice
    ``target_height``: the graph's own resizing then has the detail it needs."""
    with Image.open(path) as image:
        width, height = image.size
        factor = _reduction(width, height, target_height)
        if factor > 1 and image.format == "JPEG":
            image.draft(image.mode, (width // factor, height // factor))
        image.load()
        if factor > 1:
            factor = _reduction(image.width, image.height, target_height)
            image = image.reduce(factor) if factor > 1 else image
        if image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return image.convert(mode)


def _reduction(width: int, height: int, target_height: int) -> int:
    factor = 1
    while width * height // (factor * factor) > GRAPH_MAX_PIXELS and height // (factor + 1) >= 2 * target_height:
        factor += 1
    return factor


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


ORIENTATIONS = {False: (0, 180), True: (90, 270)}
"""The ways a line may lie that ``orientation='auto'`` reads, for a line image wider than high
(False) and higher than wide (True), in degrees clockwise from upright: 180, upside down; 90,
reading top to bottom; 270, bottom to top."""
UPRIGHT = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
"""The turn (counter-clockwise, Pillow's) that sets a line lying so upright."""


def turn_upright(image: Image.Image, angle: int) -> Image.Image:
    """``image`` of a line lying ``angle`` degrees clockwise from upright (``ORIENTATIONS``), set
    upright: pixels moved, none resampled."""
    return image if angle == 0 else image.transpose(UPRIGHT[angle])


def from_upright(angle: int, size: tuple[int, int]) -> tuple[float, ...]:
    """The affine map ``(a, b, c, d, e, f)`` (``x = a x' + b y' + c``, ``y = d x' + e y' + f``)
    from a point of ``turn_upright(image, angle)`` back to the same point of ``image``, whose
    size is ``size``."""
    width, height = size
    return {
        0: (1, 0, 0, 0, 1, 0),
        90: (0, -1, width, 1, 0, 0),
        180: (-1, 0, width, 0, -1, height),
        270: (0, 1, 0, -1, 0, height),
    }[angle]


__all__ = [
    "IMAGE_FORMATS",
    "ORIENTATIONS",
    "UPRIGHT",
    "from_upright",
    "turn_upright",
    "IMAGE_SUFFIXES",
    "TIFF_SUFFIXES",
    "check_image",
    "GRAPH_MAX_PIXELS",
    "get_resized_width",
    "needs_host_decoding",
    "open_for_graph",
    "open_image",
    "scaled_width",
    "upright_size",
]
