"""The image rules that training and reading share, in the graph: decoding image bytes, resizing
a line to the network's height, padding a batch. Training's pipeline (``tf_crnn.training.pipeline``),
the SavedModel (``tf_crnn.export.savedmodel``) and the reader (``tf_crnn.reading``) all use these, so that a
line reads as it trained; ``tf_crnn.data.images`` holds the same rules for Pillow, outside the graph
(``tests/test_golden.py`` pins the two together).

Images are ``uint8``-valued tensors of shape ``(height, width, channels)``; the one normalisation
to floats happens inside the network (``tf_crnn.network.layers``).
"""

from __future__ import annotations

import tensorflow as tf

from tf_crnn.data import images
from tf_crnn.data.images import scaled_width

PADDING_VALUE = 255
"""The value right of a line in a batch: white paper. The network zeroes every column past
a line's own width (``tf_crnn.network.layers``), so the value only matters to people looking at batches."""


def get_resized_width(width, height, target_height: int, max_width: int):
    """``images.get_resized_width`` on Python integers (preprocessing) and on int32 tensors (the
    graph), with the same integer arithmetic, so both agree to the pixel."""
    if isinstance(width, int) and isinstance(height, int):
        return images.get_resized_width(width, height, target_height, max_width)
    return tf.clip_by_value(scaled_width(width, height, target_height), 1, max_width)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_on_white(contents: tf.Tensor, channels: int) -> tf.Tensor:
    """A PNG with its alpha composited on white paper (transparent paper is white, not black),
    then reduced to ``channels`` with the ITU-R 601 luma weights in Pillow's integer arithmetic,
    as ``images.open_image`` does."""
    rgba = tf.cast(tf.io.decode_png(contents, channels=4), tf.int32)
    alpha = rgba[..., 3:]
    return _rgb_to(channels, (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255)


def _rgb_to(channels: int, rgb: tf.Tensor) -> tf.Tensor:
    """``(height, width, 3)`` int32 RGB to ``channels``: grey with the ITU-R 601 luma weights in
    Pillow's integer arithmetic (``Image.convert("L")``)."""
    if channels == 3:
        return tf.cast(rgb, tf.uint8)
    r, g, b = rgb[..., 0:1], rgb[..., 1:2], rgb[..., 2:3]
    return tf.cast((r * 19595 + g * 38470 + b * 7471 + 0x8000) // 65536, tf.uint8)


def decode_image(contents: tf.Tensor, channels: int) -> tf.Tensor:
    """Decodes PNG, JPEG, BMP or GIF bytes to a ``uint8`` ``(height, width, channels)`` image.

    JPEGs use the accurate integer DCT, as Pillow, OpenCV and libjpeg do by default, so
    that readers outside TensorFlow (``portable_reader.py``) get the same pixels; TF's
    own default differs from them by up to a few grey levels. PNGs are composited on
    white paper (an alpha channel is dropped otherwise, and transparent paper read as
    black) and made grey with Pillow's weights.
    """
    is_png = tf.equal(tf.strings.substr(contents, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)
    image = tf.case(
        [
            (
                tf.io.is_jpeg(contents),
                lambda: tf.io.decode_jpeg(contents, channels=channels, dct_method="INTEGER_ACCURATE"),
            ),
            (is_png, lambda: _png_on_white(contents, channels)),
        ],
        # GIF and BMP: TensorFlow's decoders give colour only; made grey as Pillow does. A GIF's
        # first frame alone is decoded.
        default=lambda: _rgb_to(
            channels, tf.cast(tf.io.decode_image(contents, channels=3, expand_animations=False), tf.int32)
        ),
    )
    image.set_shape([None, None, channels])
    return image


def resize_image(image: tf.Tensor, target_height: int, max_width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Resizes an image to ``target_height``, keeping the aspect ratio.

    Args:
        image: ``(height, width, channels)``, any real dtype with values in [0, 255].
        target_height: output height.
        max_width: images wider than this after resizing are shrunk to it.

    Returns:
        ``(image, width)``: a ``uint8`` ``(target_height, width, channels)`` image and
        its width as an int32 scalar.
    """
    shape = tf.shape(image)
    width = get_resized_width(shape[1], shape[0], target_height, max_width)
    resized = tf.image.resize(image, tf.stack([target_height, width]), method="bilinear", antialias=True)
    resized = tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
    return resized, width


def padding_inputs_width(image: tf.Tensor, target_width, fill=PADDING_VALUE) -> tf.Tensor:
    """Pads an image on the right to ``target_width`` with ``fill`` (white paper).

    The padding of every batch: the SavedModel pads each line with it, and the input
    pipeline's batches pad with the same ``PADDING_VALUE``. It holds no ink, never a
    mirror or repeat of the image. Images already at least ``target_width`` wide are
    returned as they are.

    Args:
        image: ``(height, width, channels)``.
        target_width: width to pad to.
        fill: the value of the added pixels.
    """
    pad = tf.maximum(target_width - tf.shape(image)[1], 0)
    return tf.pad(image, [[0, 0], [0, pad], [0, 0]], constant_values=tf.cast(fill, image.dtype))


__all__ = [
    "PADDING_VALUE",
    "PNG_SIGNATURE",
    "decode_image",
    "get_resized_width",
    "padding_inputs_width",
    "resize_image",
]
