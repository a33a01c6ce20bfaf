"""Experiment parameters: one flat ``Params`` dataclass with the original's keys."""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tf_crnn.alphabet import NORMALIZATIONS, Alphabet
from tf_crnn.artifacts import ALPHABET_FILENAME, BUILTIN_PREFIX, CONFIG_FILENAME
from tf_crnn.atomic import write_json
from tf_crnn.errors import ConfigError
from tf_crnn.records import read_json_object

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "rms", "ada")
LEARNING_RATE_SCHEDULES = ("plateau", "cosine")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16", "auto")
COLUMN_FEATURES = ("flatten", "max_pool")
ALPHABET_RESIZE = ("fail", "union", "new")
FREEZE = ("none", "norm", "cnn", "cnn+rnn")
DISTRIBUTION_STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
LEARNING_RATE_SCALING = ("none", "linear", "sqrt")
CACHE_IMAGES = ("auto", "memory", "disk", "none")
TEXT_DIRECTIONS = ("auto", "ltr", "rtl")
ARCHITECTURE_KEYS = (
    "input_shape",
    "input_channels",
    "cnn_features_list",
    "cnn_kernel_size",
    "cnn_stride_size",
    "cnn_pool_size",
    "cnn_batch_norm",
    "cnn_separable",
    "cnn_padding",
    "column_features",
    "rnn_units",
)
"""The keys that shape the network's weights: a checkpoint or a model to start from fits only a
network with the same values."""
LANGUAGE_MODEL_KEYS = ("lm_order", "lm_text", "lm_weight", "lm_length_bonus", "lm_beam_width", "lm_blank_skip")
"""The keys of reading with a language model: a config that sets none of them reads as the model
at ``init_from`` reads (``inherit_architecture``)."""
INHERITED_LM_KEYS = ("lm_weight", "lm_length_bonus", "lm_beam_width", "lm_blank_skip")


def _pair(value: Any, name: str, index: int) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    raise ConfigError(f"{name}[{index}] must be an integer or a pair [height, width], got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Params:
    """All parameters of an experiment; the keys of ``config.json``.

    Shapes are ``(height, width)``. Values are validated on construction; an
    invalid value raises ``ConfigError`` (a ``ValueError``) naming the field.
    """

    # --- Input images ---
    input_shape: tuple[int, int] = (96, 1400)
    """Target height every image is resized to, and the maximum width after resizing. The
    convolution blocks' width downscale (``downscale_factor``) may be at most half the height: a
    character is about that wide, and CTC needs a time step for each."""
    input_channels: int = 1
    """1 grayscale, 3 RGB."""

    # --- Convolutional feature extractor (one entry per ConvBlock) ---
    cnn_features_list: list[int] = field(default_factory=lambda: [16, 32, 64, 96, 128])
    """Filters of each convolution block."""
    cnn_kernel_size: list[int] = field(default_factory=lambda: [3, 3, 3, 3, 3])
    """Kernel of each block (int or ``[h, w]``)."""
    cnn_stride_size: list[tuple[int, int]] = field(default_factory=lambda: [(1, 1)] * 5)
    """Stride of each block's convolution."""
    cnn_pool_size: list[tuple[int, int]] = field(default_factory=lambda: [(2, 2), (2, 2), (2, 2), (2, 2), (1, 1)])
    """Max-pooling of each block (``[1, 1]``: none)."""
    cnn_batch_norm: list[bool] = field(default_factory=lambda: [False] * 5)
    """Batch normalisation in each block."""
    cnn_padding: str = "same"
    """``same`` or ``valid`` convolutions."""
    cnn_separable: list[bool] = field(default_factory=list)
    """Depthwise-separable convolution in each block (empty: none): a 3x3 filter per channel,
    then a 1x1 convolution across channels, about ``kernel area`` times fewer operations than a
    full convolution of the same size; for cheap reading networks (keep the first block full: it
    has one input channel)."""

    # --- Recurrent layers and decoding ---
    column_features: str = "flatten"
    """How each column of the last convolution block becomes one time step: ``flatten`` (its
    height times channels, as the original) or ``max_pool`` (the maximum over its height:
    ``channels`` features, less tied to where in the height a glyph's parts lie)."""
    column_masking: float = 0.0
    """Fraction of the time steps zeroed in random spans of up to 8 before the recurrent layers,
    while training only (0: off): the network learns to read a character from its context."""
    ctc_shortcut: float = 0.0
    """Weight of a second CTC loss on logits read from the convolutional features by a 1-D
    convolution, while training only (Retsinas et al. 2022's "CTC shortcut"; 0: off, they use
    0.1): the convolutions get a gradient that has not gone through the LSTMs."""

    rnn_units: list[int] = field(default_factory=lambda: [256, 256])
    """Units of each bidirectional LSTM layer."""
    rnn_dropout: float = 0.5
    """Dropout on the LSTM inputs."""
    output_dropout: float = 0.0
    """Dropout on the last recurrent layer's output, before the output layer, while training only
    (0: off; Retsinas et al. 2022 put 0.2 there): ``rnn_dropout`` acts on each layer's input."""
    num_beam_paths: int = 1
    """1: greedy CTC decoding; more: beam search returning that many alternatives."""
    beam_width: int = 100
    """Beams kept by beam search."""
    lm_order: int = 0
    """Order of the character n-gram language model trained from the training labels (or
    ``lm_text``) and stored in each export; 0: none. It is used when ``lm_weight`` is above 0,
    which ``tf-crnn tune-lm`` sets from a validation set."""
    lm_text: str | None = None
    """A UTF-8 text file to train the language model on instead of the training labels."""
    lm_weight: float = 0.0
    """Weight of the language model's log-probability in CTC beam search; 0: greedy decoding."""
    lm_length_bonus: float = 0.0
    """Added to a beam's score per character, against the language model's preference for short lines."""
    lm_beam_width: int = 8
    """Beams kept by the language model's beam search."""
    lm_blank_skip: float = 0.999
    """The language model's search reads each run of frames whose blank probability is at least
    this as one frame: most frames are such blanks, and the second of a run changes nothing the
    search could choose. 1: every frame is read (slower, the same text but for rare lines)."""

    # --- Data files and alphabet ---
    csv_delimiter: str = ";"
    """Between path and label."""
    string_split_delimiter: str = "|"
    """Between the units of a label (a unit may be several characters)."""
    csv_files_train: str | list[str] | None = None
    """Training CSV (or list of CSVs)."""
    csv_files_eval: str | list[str] | None = None
    """Validation CSV (or list); without it there is no validation, early stopping or best-model
    choice."""
    lookup_alphabet_file: str | None = None
    """Alphabet lookup JSON."""
    blank_symbol: str = "$"
    """The blank symbol of legacy lookups (see Data format)."""
    unicode_normalization: str = "NFC"
    """Unicode form of labels and alphabet units, applied alike in training and evaluation
    (NFC, NFD, NFKC, NFKD, or none)."""
    text_direction: str = "auto"
    """The direction of a line that holds right-to-left letters (Hebrew, Arabic), for putting its
    label in the order the network reads and its reading back in logical order
    (``data.direction``): ``rtl`` for documents written right to left (a line is right to left
    even where it starts with a Latin word or a number), ``ltr`` for documents written left to
    right with the odd right-to-left word, ``auto`` (default) from each line's first strong
    letter. Lines without right-to-left letters are never reordered."""
    max_chars_per_string: int = 75
    """Longer labels are dropped."""

    # --- Data augmentation (training only) ---
    data_augmentation: bool = True
    """Brightness/contrast, rotation, slant and margin jitter of training images."""
    data_augmentation_max_rotation: float = 0.005
    """Largest rotation, in radians."""
    data_augmentation_max_slant: float = 0.7
    """Largest horizontal shear, as a fraction of the image height (tan of the slant angle)."""
    data_augmentation_stroke: int = 0
    """Largest change of stroke width, in pixels at the target height (0: off): ink is thickened
    or thinned by up to this many pixels."""
    data_augmentation_stretch: float = 0.0
    """Largest relative change of a line's width (0: off): 0.2 resizes it horizontally by a factor
    drawn in [0.8, 1.2], as fonts and hands differ in how wide they set letters."""
    data_augmentation_elastic: float = 0.0
    """Largest displacement of a smooth random distortion (grid distortion), in pixels at the
    target height (0: off)."""

    # --- Training ---
    n_epochs: int = 50
    """Epochs to train."""
    train_batch_size: int = 64
    """Batch sizes."""
    eval_batch_size: int = 128
    """Batch sizes."""
    learning_rate: float = 1e-4
    """Initial learning rate."""
    optimizer: str = "adam"
    """``adam``, ``rms`` (RMSprop) or ``ada`` (Adadelta); gradients clipped at norm 5."""
    evaluate_every_epoch: int = 5
    """Validate every this many epochs."""
    save_interval: int = 20
    """Export a SavedModel every this many epochs (and always at the end)."""
    keep_max_models: int = 5
    """Periodic exports kept."""
    learning_rate_schedule: str = "plateau"
    """``plateau``: halve the rate after ``lr_reduce_patience`` evaluations without a lower
    validation loss. ``cosine``: decay it along a half cosine to 1% over the run (over
    ``time_limit_minutes`` when set, else over ``n_epochs``)."""
    lr_reduce_patience: int = 4
    """Evaluations without a lower validation loss before the learning rate is halved; 0: never
    (``plateau`` schedule only)."""
    early_stopping_patience: int = 10
    """Evaluations without a lower validation CER before training stops; 0: never."""
    mixed_precision: str = "none"
    """``mixed_float16`` (GPUs with tensor cores) or ``mixed_bfloat16`` (recent GPUs and CPUs
    with AVX-512 BF16 / AMX): layers compute in 16 bits, weights, logits and the loss stay
    float32; exports are float32 whatever this says. ``none``: float32 throughout. ``auto``
    (the presets): ``mixed_bfloat16`` where the GPUs (compute capability 8.0 on) or, without
    GPUs, the CPU compute bfloat16 natively, else ``none``; the log says which."""
    cache_images: str = "auto"
    """Where decoded, resized training images are kept between epochs: ``memory`` (fastest),
    ``disk`` (a cache file in ``output_model_dir/preprocessed``, written during the first epoch),
    ``none`` (decoded again each epoch: the least memory, for sets larger than memory), or
    ``auto``: ``memory`` when the estimated decoded size of the set (from a sample of image
    headers) is under 2 GiB, else ``disk``; the log says which."""
    bucket_by_width: bool = True
    """Batch lines of similar widths and pad each batch to its own widest line; false pads
    every image to ``input_shape[1]`` like the original tf_crnn."""
    save_every_steps: int = 0
    """Also checkpoint every this many training batches, so that a crash loses at most
    that many; 0: at the end of each epoch only."""
    time_limit_minutes: float = 0.0
    """Stop cleanly (checkpoint, evaluation, export) after this many minutes of training; 0: no limit.
    A resumed run counts the minutes of its earlier sessions, as ``n_epochs`` counts their epochs
    (and the cosine schedule goes on where it stopped): raise it to train a finished run longer."""
    steps_per_epoch: int = 0
    """Training batches per epoch; 0: one pass over the training set."""
    seed: int = 0
    """Random seed: of the network's first weights, and of the order of the training lines
    (0 shuffles them differently each run unless ``deterministic``)."""
    deterministic: bool = False
    """The same run twice gives the same model (on the same machine and library versions):
    training lines are shuffled by ``seed`` (0 included), decoded in parallel but kept in their
    order, and augmented one at a time. False lets them come as they are ready, which keeps the
    device busier; runs then differ."""
    jit_compile: bool = False
    """Compile each training step with XLA (fused kernels; mostly pays on GPUs)."""

    # --- Several devices and machines (``tf_crnn.training.distribute``) ---
    distribution_strategy: str = "default"
    """``default``: one device. ``mirrored``: a replica on each local GPU (or on each device in
    ``devices``). ``multi_worker_mirrored``: a replica on each worker of the cluster that the
    ``TF_CONFIG`` environment variable describes (and on each of its GPUs)."""
    devices: list = field(default_factory=list)
    """Devices of the ``mirrored`` strategy, e.g. ``["GPU:0", "GPU:1"]``; empty: every local GPU."""
    learning_rate_scaling: str = "none"
    """``train_batch_size`` is per replica, so the global batch grows with the replicas.
    ``none`` keeps ``learning_rate`` as it is; ``linear`` multiplies it by the number of
    replicas, ``sqrt`` by its square root."""

    # --- Starting from a model (fine-tuning) ---
    init_from: str = ""
    """A tf_crnn model to start from: ``builtin:NAME``, an ``output_model_dir``, an export folder,
    or a ``.weights.h5`` file with its ``config.json`` beside it. Every layer's weights are
    loaded (architecture keys the config leaves out are the model's; those it sets must match);
    where the config sets no ``lm_*`` key, the exports read with the model's language model, if
    it has one. The run itself is new: epoch 0, fresh optimizer. When ``restore_model`` resumes
    a checkpoint of this run, the weights are the checkpoint's and the keys the config leaves out
    are those the run started with."""
    alphabet_resize: str = "fail"
    """When the data's alphabet differs from ``init_from``'s: ``fail`` refuses, listing the
    units on each side; ``union`` keeps every unit of the model at its output row and adds the
    data's new ones; ``new`` takes the data's alphabet, keeping the rows of the units both share."""
    freeze: str = "none"
    """Layers that keep their weights during training: ``norm`` (the convolution blocks' batch
    normalisation alone, which then stays in inference mode: a few lines cannot move its
    statistics), ``cnn`` (the convolution blocks, their normalisation with them), ``cnn+rnn``
    (all but the output layer)."""

    # --- Learning from a larger model (``tf_crnn.training.distill``) ---
    distill_from: str = ""
    """A trained model to learn from as well as from the labels (knowledge distillation), as
    ``init_from`` names one: on every training batch it reads the same images, and the network is
    also trained towards its probabilities frame by frame. The teacher must read images of the same
    height and channels into as many frames, and know every unit of this run's alphabet; it is
    never saved with the run. '' (default): labels only."""
    distill_weight: float = 1.0
    """Weight of the distillation loss (each line's Kullback-Leibler divergence from the
    teacher's frame probabilities, summed over its frames) beside the CTC loss."""
    distill_temperature: float = 1.0
    """Softens both sides' probabilities before they are compared (the loss is scaled by its
    square, as Hinton et al.); 1: as they are."""

    # --- Output ---
    output_model_dir: str = ""
    """Where everything is written (required)."""
    restore_model: bool = False
    """Resume from the newest checkpoint in ``output_model_dir``."""
    write_report: bool = True
    """At the end of training, evaluate the export on the validation rows and write
    ``output_model_dir/report/`` (``report.html``, ``curves.png``, ``samples.png``)."""
    calibrate: bool = True
    """At the end of training, fit the export's calibration on the validation rows, so that a
    line's confidence is the probability that it is read exactly and a character's that it is
    right (``tf-crnn calibrate`` does it on any labelled set)."""

    def __post_init__(self) -> None:
        self._validate()

    # --- Validation -------------------------------------------------------------

    def _validate(self) -> None:
        def fail(name: str, message: str) -> None:
            raise ConfigError(f"{name}: {message}, got {getattr(self, name)!r}")

        # Scalar types first: JSON's true is no number, 2 is no boolean, and 5.0 no count.
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), f.type
            if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                fail(f.name, "must be a number")
            elif kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                fail(f.name, "must be a whole number")
            elif kind == "bool" and not isinstance(value, bool):
                fail(f.name, "must be true or false")
            elif kind in ("str", "str | None") and not (isinstance(value, str) or (value is None and "None" in kind)):
                fail(f.name, "must be a string")

        shape = self.input_shape
        if not (isinstance(shape, (list, tuple)) and len(shape) == 2 and all(_is_int(v) and v > 0 for v in shape)):
            fail("input_shape", "must be [height, max_width] with two positive integers")
        self.input_shape = (int(shape[0]), int(shape[1]))
        if self.input_channels not in (1, 3):
            fail("input_channels", "must be 1 (grayscale) or 3 (RGB)")

        n_blocks = len(self.cnn_features_list) if isinstance(self.cnn_features_list, (list, tuple)) else -1
        if n_blocks < 1:
            fail("cnn_features_list", "must be a non-empty list of integers")
        for name in ("cnn_features_list", "cnn_kernel_size", "cnn_stride_size", "cnn_pool_size", "cnn_batch_norm"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)):
                fail(name, "must be a list with one entry per convolution block")
            if len(value) != n_blocks:
                raise ConfigError(
                    f"{name}: has {len(value)} entries but cnn_features_list has {n_blocks}; "
                    "give one entry per convolution block"
                )
        if not all(_is_int(v) and v > 0 for v in self.cnn_features_list):
            fail("cnn_features_list", "must hold positive integers")
        self.cnn_features_list = list(self.cnn_features_list)
        self.cnn_kernel_size = [_pair(v, "cnn_kernel_size", i) for i, v in enumerate(self.cnn_kernel_size)]
        self.cnn_stride_size = [_pair(v, "cnn_stride_size", i) for i, v in enumerate(self.cnn_stride_size)]
        self.cnn_pool_size = [_pair(v, "cnn_pool_size", i) for i, v in enumerate(self.cnn_pool_size)]
        for name in ("cnn_kernel_size", "cnn_stride_size", "cnn_pool_size"):
            if any(min(p) < 1 for p in getattr(self, name)):
                fail(name, "must hold positive sizes")
        if not all(isinstance(v, bool) for v in self.cnn_batch_norm):
            fail("cnn_batch_norm", "must hold true/false values")
        self.cnn_batch_norm = list(self.cnn_batch_norm)
        separable = self.cnn_separable
        if not (isinstance(separable, (list, tuple)) and all(isinstance(v, bool) for v in separable)):
            fail("cnn_separable", "must be a list of true/false values, one per convolution block (or empty)")
        if separable and len(separable) != n_blocks:
            raise ConfigError(
                f"cnn_separable: has {len(separable)} entries but cnn_features_list has {n_blocks}; "
                "give one entry per convolution block, or none"
            )
        self.cnn_separable = list(separable)
        if self.cache_images not in CACHE_IMAGES:
            fail("cache_images", f"must be one of {', '.join(CACHE_IMAGES)}")
        if self.cnn_padding not in ("same", "valid"):
            fail("cnn_padding", "must be 'same' or 'valid'")
        height = self.feature_height
        if height < 1:
            raise ConfigError(
                f"input_shape: height {self.input_shape[0]} is too small for the convolution blocks "
                "(strides, pooling and valid padding reduce it below 1 pixel); raise the height or "
                "use fewer/smaller cnn_pool_size and cnn_stride_size entries"
            )
        # A character is about half as wide as its line is high: where the blocks emit fewer steps
        # than that, every line would be too narrow for its label (CTC needs a step a character).
        if self.downscale_factor > self.input_shape[0] / 2:
            raise ConfigError(
                f"input_shape: at height {self.input_shape[0]} a character is about "
                f"{self.input_shape[0] // 2} px wide, but the convolution blocks emit one step per "
                f"{self.downscale_factor} px of width: lines would give fewer steps than they have characters; "
                f"raise the height to at least {2 * self.downscale_factor} or pool less in width "
                "(cnn_pool_size [2, 1] keeps the width)"
            )

        if not (isinstance(self.rnn_units, (list, tuple)) and self.rnn_units):
            fail("rnn_units", "must be a non-empty list of positive integers")
        if not all(_is_int(v) and v > 0 for v in self.rnn_units):
            fail("rnn_units", "must hold positive integers")
        self.rnn_units = list(self.rnn_units)
        for name in ("rnn_dropout", "output_dropout"):
            rate = getattr(self, name)
            if not (isinstance(rate, (int, float)) and 0 <= rate < 1):
                fail(name, "must be a number in [0, 1)")
        for name in (
            "num_beam_paths",
            "beam_width",
            "max_chars_per_string",
            "n_epochs",
            "train_batch_size",
            "eval_batch_size",
            "evaluate_every_epoch",
            "save_interval",
            "keep_max_models",
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                fail(name, "must be a positive integer")
        for name in ("lr_reduce_patience", "early_stopping_patience", "steps_per_epoch", "save_every_steps", "seed"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                fail(name, "must be a non-negative integer")
        if isinstance(self.time_limit_minutes, bool) or not (
            isinstance(self.time_limit_minutes, (int, float)) and self.time_limit_minutes >= 0
        ):
            fail("time_limit_minutes", "must be a non-negative number (0: no limit)")
        if self.num_beam_paths > self.beam_width:
            fail("num_beam_paths", f"cannot exceed beam_width ({self.beam_width})")

        for name in ("csv_delimiter", "string_split_delimiter"):
            value = getattr(self, name)
            if not (isinstance(value, str) and len(value) == 1) or value in "\r\n":
                fail(name, "must be a single character other than a line break")
        if self.csv_delimiter == self.string_split_delimiter:
            fail("string_split_delimiter", "must differ from csv_delimiter")
        if not (isinstance(self.blank_symbol, str) and self.blank_symbol):
            fail("blank_symbol", "must be a non-empty string")
        if self.unicode_normalization not in NORMALIZATIONS:
            fail("unicode_normalization", f"must be one of {', '.join(NORMALIZATIONS)}")
        if self.text_direction not in TEXT_DIRECTIONS:
            fail("text_direction", f"must be one of {', '.join(TEXT_DIRECTIONS)}")
        for name in ("csv_files_train", "csv_files_eval"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
            ):
                fail(name, "must be a CSV path or a list of CSV paths")

        for name in ("data_augmentation", "restore_model", "bucket_by_width", "write_report", "calibrate"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "must be true or false")
        if not (
            isinstance(self.data_augmentation_max_rotation, (int, float)) and self.data_augmentation_max_rotation >= 0
        ):
            fail("data_augmentation_max_rotation", "must be a non-negative number of radians")
        if not (isinstance(self.data_augmentation_max_slant, (int, float)) and self.data_augmentation_max_slant >= 0):
            fail("data_augmentation_max_slant", "must be a non-negative number")
        if not (_is_int(self.data_augmentation_stroke) and self.data_augmentation_stroke >= 0):
            fail("data_augmentation_stroke", "must be a non-negative whole number of pixels")
        if not (isinstance(self.data_augmentation_stretch, (int, float)) and 0 <= self.data_augmentation_stretch < 1):
            fail("data_augmentation_stretch", "must be a number in [0, 1)")
        if not (_is_int(self.lm_order) and 0 <= self.lm_order <= 10):
            fail("lm_order", "must be a whole number from 0 (no language model) to 10")
        if not (isinstance(self.lm_weight, (int, float)) and self.lm_weight >= 0):
            fail("lm_weight", "must be a non-negative number")
        if not isinstance(self.lm_length_bonus, (int, float)):
            fail("lm_length_bonus", "must be a number")
        if not (isinstance(self.lm_blank_skip, (int, float)) and 0 < self.lm_blank_skip <= 1):
            fail("lm_blank_skip", "must be a number above 0 and at most 1")
        if not (_is_int(self.lm_beam_width) and self.lm_beam_width >= max(self.num_beam_paths, 1)):
            fail("lm_beam_width", "must be a whole number, at least num_beam_paths")
        if self.lm_text is not None and not isinstance(self.lm_text, str):
            fail("lm_text", "must be the path of a text file")
        if self.column_features not in COLUMN_FEATURES:
            fail("column_features", f"must be one of {', '.join(COLUMN_FEATURES)}")
        if not (isinstance(self.column_masking, (int, float)) and 0 <= self.column_masking < 0.5):
            fail("column_masking", "must be a number in [0, 0.5)")
        if not (isinstance(self.ctc_shortcut, (int, float)) and self.ctc_shortcut >= 0):
            fail("ctc_shortcut", "must be a non-negative number (0: off)")
        if not (isinstance(self.data_augmentation_elastic, (int, float)) and self.data_augmentation_elastic >= 0):
            fail("data_augmentation_elastic", "must be a non-negative number of pixels")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            fail("learning_rate", "must be a positive number")
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.mixed_precision not in MIXED_PRECISION:
            fail("mixed_precision", f"must be one of {', '.join(MIXED_PRECISION)}")
        if self.learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
            fail("learning_rate_schedule", f"must be one of {', '.join(LEARNING_RATE_SCHEDULES)}")
        if not isinstance(self.output_model_dir, str):
            fail("output_model_dir", "must be a directory path")
        if not isinstance(self.init_from, str):
            fail("init_from", "must be a model path or builtin:NAME ('' for none)")
        if self.alphabet_resize not in ALPHABET_RESIZE:
            fail("alphabet_resize", f"must be one of {', '.join(ALPHABET_RESIZE)}")
        if self.freeze not in FREEZE:
            fail("freeze", f"must be one of {', '.join(FREEZE)}")
        if self.distill_weight < 0:
            fail("distill_weight", "must be a non-negative number")
        if self.distill_temperature <= 0:
            fail("distill_temperature", "must be a positive number")
        for name in ("jit_compile", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "must be true or false")
        if self.distribution_strategy not in DISTRIBUTION_STRATEGIES:
            fail("distribution_strategy", f"must be one of {', '.join(DISTRIBUTION_STRATEGIES)}")
        if not (isinstance(self.devices, (list, tuple)) and all(isinstance(d, str) and d for d in self.devices)):
            fail("devices", 'must be a list of device names such as ["GPU:0", "GPU:1"]')
        self.devices = list(self.devices)
        if self.learning_rate_scaling not in LEARNING_RATE_SCALING:
            fail("learning_rate_scaling", f"must be one of {', '.join(LEARNING_RATE_SCALING)}")

    # --- Derived values ---------------------------------------------------------

    def _block_output(self, size: int, axis: int) -> int:
        for kernel, stride, pool in zip(self.cnn_kernel_size, self.cnn_stride_size, self.cnn_pool_size):
            size = conv_output_size(size, kernel[axis], stride[axis], self.cnn_padding)
            size = pool_output_size(size, pool[axis])
        return size

    @property
    def feature_height(self) -> int:
        """Height of the last convolution block's output."""
        return self._block_output(self.input_shape[0], axis=0)

    def output_width(self, width: int) -> int:
        """Number of CTC time steps the network emits for an image ``width`` pixels wide."""
        return self._block_output(width, axis=1)

    @property
    def minimum_width(self) -> int:
        """The narrowest image, in pixels, from which the network emits at least one time step."""
        return next((w for w in range(1, 4096) if self.output_width(w) >= 1), 4096)

    @property
    def downscale_factor(self) -> int:
        """Product of the width strides and pool sizes: pixels per time step."""
        factor = 1
        for stride, pool in zip(self.cnn_stride_size, self.cnn_pool_size):
            factor *= stride[1] * pool[1]
        return factor

    @property
    def train_csv_files(self) -> list[str]:
        return _as_list(self.csv_files_train)

    @property
    def eval_csv_files(self) -> list[str]:
        return _as_list(self.csv_files_eval)

    @cached_property
    def alphabet(self) -> Alphabet:
        """The alphabet read from ``lookup_alphabet_file`` (on first use)."""
        if not self.lookup_alphabet_file:
            raise ConfigError("lookup_alphabet_file: no alphabet lookup given; set it to a JSON {unit: code} file")
        return Alphabet(
            self.lookup_alphabet_file, blank_symbol=self.blank_symbol, normalization=self.unicode_normalization
        )

    # --- Serialisation ----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The parameters as JSON-ready values (lists for tuples)."""
        out = {}
        for f in dataclasses.fields(self):
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def show_experiment_params(self) -> dict[str, Any]:
        """The parameters, as the original's method returned them."""
        return self.to_dict()

    def to_json_file(self, json_filename: str | os.PathLike) -> None:
        write_json(json_filename, self.to_dict())

    @classmethod
    def from_dict(cls, config: dict[str, Any], source: str = "config") -> Params:
        """Builds parameters from a mapping; unknown keys raise ``ConfigError``."""
        if not isinstance(config, dict):
            raise ConfigError(f"{source}: must be a JSON object of parameters")
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in config:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"{source}: unknown key '{key}'{hint}")
        # A non-string init_from is left for the validation to name.
        if isinstance(config.get("init_from"), str) and config["init_from"]:
            config = inherit_architecture(config)
        return cls(**config)

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike, **overrides: Any) -> Params:
        """Reads parameters from a JSON file; ``overrides`` replace its values.

        Relative paths in the file (``PATH_KEYS``: CSV files, alphabet, output directory, ...)
        are taken relative to the file's own folder, so that a data set with its config can be
        moved or mounted elsewhere; paths in ``overrides`` are the caller's (relative to the
        current directory).
        """
        config = read_json_object(json_file, "config file", error=ConfigError, missing=ConfigError)
        config = resolve_paths(config, Path(json_file).parent)
        config.update(overrides)
        return cls.from_dict(config, source=str(json_file))


def inherit_architecture(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the architecture keys (``ARCHITECTURE_KEYS``) it does not set taken from
    the model at ``init_from``, so that a fine-tuning config need not repeat the base model's
    network; keys it sets are kept (and checked against the model's weights by training). Where
    it sets no language-model key (``LANGUAGE_MODEL_KEYS``), the model's reading settings
    (``INHERITED_LM_KEYS``) too: the run's exports then read with the model's language model
    (``transfer.StartingPoint.language_model``). A run resumed (``restore_model``) takes them from
    its own saved config instead, which holds what it took when it started. Unchanged when the
    model cannot be read (training then says why)."""
    from tf_crnn.artifacts import config_file, resolve_model

    network = [key for key in ARCHITECTURE_KEYS if key not in config]
    reading = () if any(key in config for key in LANGUAGE_MODEL_KEYS) else INHERITED_LM_KEYS
    if not network and not reading:
        return config
    run_dir = config.get("output_model_dir")
    own = Path(str(run_dir)) / CONFIG_FILENAME if run_dir else None
    resumed = bool(config.get("restore_model")) and own is not None and own.is_file()
    try:
        source = own if resumed else config_file(resolve_model(config["init_from"], checkpoints=True))
        base = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return config
    taken = {key: base[key] for key in network if key in base}
    if taken:
        logger.info(
            "%s: the network's %s taken from %s (set them in the config to override)",
            "restore_model" if resumed else f"init_from {config['init_from']}",
            ", ".join(f"{key}={value}" for key, value in taken.items()),
            "the run being resumed" if resumed else "the model",
        )
    if base.get("lm_weight", 0) > 0:
        taken.update({key: base[key] for key in reading if key in base})
    return {**config, **taken}


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of a convolution along one axis (TensorFlow's rule); ints or int tensors."""
    # Ceiling division written without negative operands: ONNX integer division truncates.
    if padding == "same":
        return (size + stride - 1) // stride
    out = (size - kernel) // stride + 1
    # Tensors (in the graph) stay unclamped: a negative length masks everything anyway.
    return max(0, out) if isinstance(out, int) else out


def pool_output_size(size: int, pool: int) -> int:
    """Output length of 'same' max pooling with stride equal to the pool size."""
    return (size + pool - 1) // pool


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parses ``key=value`` command-line overrides; values are JSON, else strings."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' must be written key=value")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def read_config(
    model_directory: str | os.PathLike | None = None, json_filename: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Reads the parameters saved with a trained model.

    Args:
        model_directory: an ``output_model_dir`` or an export folder; its
            ``config.json`` is read.
        json_filename: a parameters JSON file, read when no directory is given.

    Returns:
        The parameters as a dictionary.
    """
    if model_directory is None and json_filename is None:
        raise ValueError("read_config needs model_directory or json_filename")
    if model_directory is not None:
        json_filename = Path(model_directory) / CONFIG_FILENAME
    path = Path(json_filename)  # type: ignore[arg-type]
    if not path.is_file():
        raise FileNotFoundError(f"no parameters file {path}")
    return json.loads(path.read_text(encoding="utf-8"))


PATH_KEYS = (
    "csv_files_train", "csv_files_eval", "lookup_alphabet_file", "output_model_dir", "lm_text", "init_from",
    "distill_from",
)  # fmt: skip
"""Config keys that name files or folders: relative values are relative to the config file's folder."""


def resolve_paths(config: dict[str, Any], folder: str | os.PathLike) -> dict[str, Any]:
    """``config`` with the relative paths of ``PATH_KEYS`` joined to ``folder`` (absolute paths,
    empty values and ``builtin:NAME`` are kept)."""

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if not isinstance(value, str) or not value or value.startswith(BUILTIN_PREFIX) or os.path.isabs(value):
            return value
        return os.path.normpath(os.path.join(os.path.abspath(folder), value))

    return {key: resolve(value) if key in PATH_KEYS else value for key, value in config.items()}


def relative_paths(config: dict[str, Any], folder: str | os.PathLike) -> dict[str, Any]:
    """``config`` with the paths of ``PATH_KEYS`` written relative to ``folder``, where the config
    file will be: the inverse of ``resolve_paths``, so a data set's folder can move as a whole."""

    def relative(value: Any) -> Any:
        if isinstance(value, list):
            return [relative(v) for v in value]
        if not isinstance(value, (str, os.PathLike)) or not str(value) or str(value).startswith(BUILTIN_PREFIX):
            return value
        return os.path.relpath(os.path.abspath(value), os.path.abspath(folder))

    return {key: relative(value) if key in PATH_KEYS else value for key, value in config.items()}


def model_params(folder: str | os.PathLike) -> Params:
    """A model folder's parameters (its ``config.json``; ``artifacts.resolve_model``) with its
    own alphabet file, not the path recorded in the config (which may be gone, or on another
    machine)."""
    folder = Path(folder)
    config = read_config(folder)
    return Params(**dict(config, lookup_alphabet_file=str(folder / ALPHABET_FILENAME)))


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


import_params_from_json = read_config
"""The original tf_crnn's name of ``read_config``."""


__all__ = [
    "PATH_KEYS",
    "relative_paths",
    "resolve_paths",
    "ARCHITECTURE_KEYS",
    "model_params",
    "Alphabet",
    "ConfigError",
    "Params",
    "conv_output_size",
    "import_params_from_json",
    "read_config",
    "inherit_architecture",
    "INHERITED_LM_KEYS",
    "LANGUAGE_MODEL_KEYS",
    "parse_overrides",
    "pool_output_size",
]
