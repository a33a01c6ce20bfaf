"""Training's input: augmentation and the ``tf.data`` pipeline (decoding, resizing and padding
are ``tf_crnn.data.image_converter``'s, which reading shares).

Images travel as ``uint8``-valued tensors of shape ``(height, width, channels)``
(``(batch, height, width, channels)`` once batched) together with their widths;
the one normalisation to floats happens inside the model (``tf_crnn.network.layers``), so
training, evaluation, prediction and every export see the same numbers.
"""

from __future__ import annotations

import itertools
import logging
import math
import os

import numpy as np
import tensorflow as tf

from tf_crnn.config import Params
from tf_crnn.data import images
from tf_crnn.data.direction import BASES, reorder
from tf_crnn.data.image_converter import (
    PADDING_VALUE,
    decode_image,
    padding_inputs_width,
    resize_image,
)
from tf_crnn.data.images import scaled_width
from tf_crnn.records import read_csv_rows, resolve_image_path, split_label
from tf_crnn.training.distribute import shard_rows

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
WIDTH_BUCKET = 32
"""Width step, in pixels, between the buckets of the training pipeline."""
SHUFFLE_BUFFER = 20_000
"""Lines a cached data set is shuffled over, each epoch."""


def estimate_background(image: tf.Tensor) -> tf.Tensor:
    """Per-channel median of the border pixels: the colour of the paper.

    Returns:
        ``(channels,)`` tensor of the image's dtype.
    """
    c = tf.shape(image)[-1]
    border = tf.concat(
        [
            tf.reshape(image[0], [-1, c]),
            tf.reshape(image[-1], [-1, c]),
            tf.reshape(image[:, 0], [-1, c]),
            tf.reshape(image[:, -1], [-1, c]),
        ],
        axis=0,
    )
    ordered = tf.sort(tf.cast(border, tf.int32), axis=0)
    return tf.cast(ordered[tf.shape(ordered)[0] // 2], image.dtype)


def _projective(image: tf.Tensor, transform: tf.Tensor, out_width, background: tf.Tensor) -> tf.Tensor:
    """Applies a 3x3 (flattened to 8) output-to-input transform with background fill."""
    channels = image.shape[-1]
    out = []
    for c in range(channels):
        plane = tf.cast(image[None, :, :, c : c + 1], tf.float32)
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=plane,
            transforms=tf.reshape(transform, [1, 8]),
            output_shape=tf.stack([tf.shape(image)[0], out_width]),
            fill_value=tf.cast(background[c], tf.float32),
            interpolation="BILINEAR",
            fill_mode="CONSTANT",
        )
        out.append(warped[0])
    return tf.cast(tf.round(tf.concat(out, axis=-1)), image.dtype)


def random_rotation(image: tf.Tensor, max_rotation: float, background: tf.Tensor | None = None) -> tf.Tensor:
    """Rotates an image about its centre by a uniform angle in ``[-max_rotation, max_rotation]`` radians."""
    if background is None:
        background = estimate_background(image)
    angle = tf.random.uniform([], -max_rotation, max_rotation)
    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    transform = tf.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])
    return _projective(image, transform, tf.shape(image)[1], background)


def random_slant(image: tf.Tensor, max_slant: float, max_width: int, background: tf.Tensor) -> tf.Tensor:
    """Shears an image horizontally, widening the canvas so that no ink is cut.

    The shear is limited so that the result stays within ``max_width``.
    """
    h = tf.shape(image)[0]
    w = tf.shape(image)[1]
    hf = tf.cast(h, tf.float32)
    room = tf.cast(max_width - w, tf.float32) / tf.maximum(hf, 1.0)
    limit = tf.minimum(tf.cast(max_slant, tf.float32), tf.maximum(room, 0.0))
    shear = tf.random.uniform([], -1.0, 1.0) * limit
    extra = tf.cast(tf.math.ceil(tf.abs(shear) * hf), tf.int32)
    # Output (x, y) reads input (x + shear * y - max(shear, 0) * h, y): the canvas
    # grows by |shear| * h and every input column stays inside it.
    transform = tf.stack([1.0, shear, -tf.maximum(shear, 0.0) * hf, 0.0, 1.0, 0.0, 0.0, 0.0])
    return _projective(image, transform, w + extra, background)


def random_stroke_width(image: tf.Tensor, max_change: int) -> tf.Tensor:
    """Thickens (dilates the dark ink) or thins the strokes by up to ``max_change`` pixels.

    A grey-level morphology: the ink is the dark part, so thickening is a minimum filter
    and thinning a maximum filter, with a square window of ``change + 1`` pixels (pooling
    windows are static: each size is computed and the drawn one kept).
    """
    change = tf.random.uniform([], -max_change, max_change + 1, dtype=tf.int32)
    x = tf.cast(image, tf.float32)[None]

    out = x
    for k in range(1, max_change + 1):
        window = k + 1
        thick = -tf.nn.max_pool2d(-x, window, 1, "SAME")
        thin = tf.nn.max_pool2d(x, window, 1, "SAME")
        out = tf.where(change == k, thick, tf.where(change == -k, thin, out))
    return tf.cast(out[0], image.dtype)


def random_stretch(image: tf.Tensor, max_change: float, max_width: int) -> tf.Tensor:
    """Resizes an image horizontally by a factor drawn in ``[1 - max_change, 1 + max_change]``,
    never wider than ``max_width``."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    factor = tf.random.uniform([], 1.0 - max_change, 1.0 + max_change)
    width = tf.clip_by_value(tf.cast(tf.round(tf.cast(w, tf.float32) * factor), tf.int32), 1, max_width)
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([h, width]), method="bilinear")
    return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), image.dtype)


def random_elastic(image: tf.Tensor, max_shift: float, background: tf.Tensor) -> tf.Tensor:
    """A smooth random distortion: displacements of up to ``max_shift`` pixels drawn on a coarse
    grid (cells about the image's height wide), interpolated to every pixel, the image sampled
    bilinearly at the displaced positions; outside the image is paper."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    cells = tf.maximum(w // tf.maximum(h, 1), 1) + 1
    grid = tf.random.uniform(tf.stack([3, cells, 2]), -max_shift, max_shift)
    field = tf.image.resize(grid[None], tf.stack([h, w]), method="bilinear")[0]
    ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij")
    sx, sy = xs + field[..., 0], ys + field[..., 1]
    x0, y0 = tf.floor(sx), tf.floor(sy)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    pixels = tf.cast(image, tf.float32)
    paper = tf.cast(background, tf.float32)

    def at(yy, xx):
        inside = (xx >= 0) & (xx <= tf.cast(w - 1, tf.float32)) & (yy >= 0) & (yy <= tf.cast(h - 1, tf.float32))
        index = tf.stack(
            [tf.clip_by_value(tf.cast(yy, tf.int32), 0, h - 1), tf.clip_by_value(tf.cast(xx, tf.int32), 0, w - 1)], -1
        )
        return tf.where(inside[..., None], tf.gather_nd(pixels, index), paper)

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return tf.cast(tf.round(top * (1 - fy) + bottom * fy), image.dtype)


def augment_data(image: tf.Tensor, params: Params) -> tf.Tensor:
    """Random photometric and geometric changes of a resized ``uint8`` training image.

    Brightness and contrast jitter, horizontal stretch (``data_augmentation_stretch``),
    rotation (``data_augmentation_max_rotation``),
    slant (``data_augmentation_max_slant``), stroke width (``data_augmentation_stroke``),
    a smooth distortion (``data_augmentation_elastic``) and random background padding on
    both sides; the result is never wider than ``input_shape[1]``.

    Args:
        image: ``(height, width, channels)`` ``uint8`` image at the target height.
        params: experiment parameters.

    Returns:
        The augmented ``uint8`` image, same height, possibly wider.
    """
    max_width = params.input_shape[1]
    background = estimate_background(image)
    x = tf.cast(image, tf.float32)
    contrast = tf.random.uniform([], 0.7, 1.3)
    brightness = tf.random.uniform([], -25.0, 25.0)
    mean = tf.reduce_mean(x)
    x = tf.clip_by_value((x - mean) * contrast + mean + brightness, 0.0, 255.0)
    bg = tf.clip_by_value((tf.cast(background, tf.float32) - mean) * contrast + mean + brightness, 0.0, 255.0)
    x = tf.cast(tf.round(x), tf.uint8)
    background = tf.cast(tf.round(bg), tf.uint8)
    if params.data_augmentation_stretch > 0:
        x = random_stretch(x, params.data_augmentation_stretch, max_width)
    if params.data_augmentation_max_rotation > 0:
        x = random_rotation(x, params.data_augmentation_max_rotation, background)
    if params.data_augmentation_max_slant > 0:
        x = random_slant(x, params.data_augmentation_max_slant, max_width, background)
    if params.data_augmentation_stroke > 0:
        x = random_stroke_width(x, params.data_augmentation_stroke)
    if params.data_augmentation_elastic > 0:
        x = random_elastic(x, params.data_augmentation_elastic, background)
    # Random margins of paper, as crops of real pages vary.
    room = tf.maximum(max_width - tf.shape(x)[1], 0)
    margin = tf.minimum(room, tf.shape(x)[0] // 2 + 1)
    left = tf.random.uniform([], 0, margin + 1, dtype=tf.int32)
    right = tf.random.uniform([], 0, margin - left + 1, dtype=tf.int32)
    h = tf.shape(x)[0]
    c = tf.shape(x)[2]
    fill = tf.reshape(background, [1, 1, -1])
    x = tf.concat(
        [tf.ones([h, left, c], tf.uint8) * fill, x, tf.ones([h, right, c], tf.uint8) * fill],
        axis=1,
    )
    return x


def load_csv(csv_filename: str | os.PathLike, params: Params) -> tuple[list[str], list[list[int]]]:
    """Reads a preprocessed CSV: image paths and encoded labels, in display order (the order the
    network reads the image in: ``data.direction``; a left-to-right line's own).

    Rows whose label has units outside the alphabet raise ``ValueError``; run
    ``tf_crnn.data.preprocessing.preprocess_csv`` first to drop them.
    """
    paths: list[str] = []
    labels: list[list[int]] = []
    for number, path, label in read_csv_rows(csv_filename, params.csv_delimiter):
        units, _ = reorder(split_label(label or "", params.string_split_delimiter), BASES[params.text_direction])
        try:
            codes = params.alphabet.encode(units)
        except KeyError as e:
            raise ValueError(f"{csv_filename}:{number}: unit {e.args[0]!r} is not in the alphabet") from None
        paths.append(resolve_image_path(csv_filename, path))
        labels.append(codes)
    return paths, labels


def _load_example(path: tf.Tensor, params: Params) -> tuple[tf.Tensor, tf.Tensor]:
    image = decode_image(tf.io.read_file(path), params.input_channels)
    return resize_image(image, params.input_shape[0], params.input_shape[1])


def dataset_generator(
    csv_filename: str | os.PathLike | list,
    params: Params,
    use_labels: bool = True,
    batch_size: int = 64,
    data_augmentation: bool = False,
    num_epochs: int | None = None,
    shuffle: bool = True,
    cache: bool | str = True,
    shard: tuple[int, int] | None = None,
    bucket: bool | None = None,
    cache_file: str | os.PathLike | None = None,
) -> tf.data.Dataset:
    """The input pipeline of a (preprocessed) CSV.

    Elements are ``(features, labels)`` with ``features = {"images": (batch, height,
    width, channels) uint8, "widths": (batch,) int32}`` and ``labels`` a
    ``(batch, max_label_length)`` int32 tensor of codes padded with
    ``alphabet.BLANK_INDEX`` (0); without labels, elements are ``features`` plus
    ``"filenames"``. Each batch is padded only to its own widest image; with
    ``params.bucket_by_width`` lines of similar widths are batched together, without
    it every image is padded to ``input_shape[1]`` as the original did.

    Args:
        csv_filename: a preprocessed CSV, or a list of image paths when ``use_labels`` is False.
        params: experiment parameters.
        use_labels: yield labels (training, evaluation) or file names (prediction).
        batch_size: images per batch.
        data_augmentation: apply ``augment_data`` to each image.
        num_epochs: repeat the data this many times; None: forever when
            training (``shuffle``), once otherwise.
        shuffle: shuffle the samples (every epoch).
        cache: where decoded, resized images are kept after the first pass: ``memory`` (or
            True), ``disk`` (in ``cache_file``) or ``none`` (or False: decoded again each pass,
            the samples shuffled as paths, so memory does not grow with the data set).
        shard: ``(shards, index)``: read only every ``shards``-th row from ``index`` (one
            worker's part, ``tf_crnn.training.distribute.shard_rows``).
        bucket: batch lines of similar widths together (with ``params.bucket_by_width``), which
            changes the order of the samples; None: when shuffling. Validation sets it: batches
            in file order, each padded to its widest line, hold 2.5 times the columns.
    """
    if isinstance(csv_filename, (list, tuple)):
        paths, labels = [str(p) for p in csv_filename], [[] for _ in csv_filename]
    else:
        paths, labels = load_csv(csv_filename, params)
    if shard is not None:
        paths, labels = shard_rows(paths, *shard), shard_rows(labels, *shard)
    if not paths:
        raise ValueError(f"{csv_filename}: no samples")
    n = len(paths)
    mode = {True: "memory", False: "none"}.get(cache, cache)
    if mode == "disk" and cache_file is None:
        raise ValueError("cache='disk' needs a cache_file")
    # Seed 0, the default, shuffles differently each run, unless the run is to be repeatable.
    seed = params.seed if params.seed or params.deterministic else None
    if shuffle and mode != "none":
        # A cache is read back in the order it was written, and the shuffle buffer behind it
        # holds SHUFFLE_BUFFER lines: rows in file order would reach training a source at a time.
        order = np.random.default_rng(seed).permutation(n)
        paths = [paths[i] for i in order]
        labels = [labels[i] for i in order] if labels else labels
    label_tensor = None
    if labels:
        # From flat codes and row lengths: tf.ragged.constant walks the nested lists in Python,
        # which takes tens of minutes for a base model's 170,000 labels.
        lengths = np.fromiter((len(label) for label in labels), dtype=np.int64, count=len(labels))
        codes = np.fromiter(itertools.chain.from_iterable(labels), dtype=np.int32, count=int(lengths.sum()))
        label_tensor = tf.RaggedTensor.from_row_lengths(codes, lengths)
    ds = tf.data.Dataset.from_tensor_slices((paths, label_tensor))

    def load(path, label):
        image, width = _load_example(path, params)
        return {"images": image, "widths": width, "filenames": path}, label

    # In order where asked, or where nothing is shuffled; else lines come as they are decoded.
    ordered = not shuffle or params.deterministic

    def repeat(ds):
        if num_epochs is None and shuffle:
            return ds.repeat()
        return ds.repeat(num_epochs) if num_epochs is not None and num_epochs > 1 else ds

    if mode == "none":
        # Streamed: the whole set shuffled as paths, each image decoded as it is needed.
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = repeat(ds).map(load, num_parallel_calls=AUTOTUNE, deterministic=ordered)
        ds = ds.ignore_errors(log_warning=True)  # an image broken after preprocessing is dropped
    else:
        ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=ordered)
        ds = ds.ignore_errors(log_warning=True)
        ds = ds.cache() if mode == "memory" else ds.cache(str(cache_file))
        if shuffle:
            ds = ds.shuffle(min(n, SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
        ds = repeat(ds)

    if data_augmentation:

        def augment(features, label):
            image = augment_data(features["images"], params)
            return dict(features, images=image, widths=tf.shape(image)[1]), label

        # Its random draws follow the order the lines are augmented in: one at a time where asked.
        ds = ds.map(augment, num_parallel_calls=1 if params.deterministic else AUTOTUNE, deterministic=ordered)

    max_width = params.input_shape[1]
    channels = params.input_channels
    padded_shapes = (
        {
            "images": [params.input_shape[0], None if params.bucket_by_width else max_width, channels],
            "widths": [],
            "filenames": [],
        },
        [None],
    )
    padding_values = ({"images": tf.constant(PADDING_VALUE, tf.uint8), "widths": 0, "filenames": ""}, 0)
    if params.bucket_by_width and (shuffle if bucket is None else bucket):
        boundaries = list(range(WIDTH_BUCKET, max_width + 1, WIDTH_BUCKET))
        if params.jit_compile:  # every width below the last boundary, as padding to boundaries needs
            boundaries.append(boundaries[-1] + WIDTH_BUCKET if boundaries else max_width + 1)
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda features, _: features["widths"],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            padded_shapes=padded_shapes,
            padding_values=padding_values,
            # XLA compiles a step per batch shape: a few widths, not one per widest line.
            pad_to_bucket_boundary=params.jit_compile,
        )
    else:
        ds = ds.padded_batch(batch_size, padded_shapes=padded_shapes, padding_values=padding_values)

    def finish(features, label):
        if use_labels:
            features = {"images": features["images"], "widths": features["widths"]}
            return features, label
        return features

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE)
    # tf.data's autotuning thread held the deletion of each finished validation iterator for
    # 25-40 s in most epochs of a training run (measured: epochs of 82 s against 44 s without
    # it; BENCHMARKS 10). Without it, AUTOTUNE takes tf.data's fixed defaults, which keep up.
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(AUTOTUNE).with_options(options)


MEMORY_CACHE_LIMIT = 2 * 2**30
"""``cache_images: auto`` keeps a training set in memory below this estimated decoded size."""


def choose_cache(params: Params, csv_filename: str | os.PathLike, sample: int = 200) -> tuple[str, int]:
    """``params.cache_images``, with ``auto`` decided from the set's estimated decoded size
    (rows × height × mean resized width of up to ``sample`` image headers × channels).

    Returns:
        ``(mode, estimated bytes)``.
    """
    # Paths only: the labels are encoded once, by dataset_generator.
    paths = [resolve_image_path(csv_filename, p) for _, p, _ in read_csv_rows(csv_filename, params.csv_delimiter)]
    height, max_width = params.input_shape
    sizes = [images.check_image(p, decode=False) for p in paths[:: max(1, len(paths) // sample)][:sample]]
    widths = [images.get_resized_width(w, h, height, max_width) for w, h in (s for s in sizes if isinstance(s, tuple))]
    estimate = int(len(paths) * height * (sum(widths) / max(len(widths), 1)) * params.input_channels)
    if params.cache_images != "auto":
        return params.cache_images, estimate
    return ("memory" if estimate < MEMORY_CACHE_LIMIT else "disk"), estimate


def count_steps(n_samples: int, batch_size: int) -> int:
    return max(1, math.ceil(n_samples / batch_size))


__all__ = [
    "MEMORY_CACHE_LIMIT",
    "augment_data",
    "choose_cache",
    "dataset_generator",
    "estimate_background",
    "load_csv",
    "padding_inputs_width",
    "scaled_width",
    "random_elastic",
    "random_rotation",
    "random_stroke_width",
]
