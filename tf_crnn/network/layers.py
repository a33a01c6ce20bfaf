"""The CRNN: images to per-time-step logits, nothing else.

Inputs are a batch of images ``(batch, height, width, channels)`` with values in
[0, 255] and each image's own width ``(batch,)``; the output is logits
``(batch, time, n_classes)`` where ``time`` is the padded width after downscaling.

Every step is exact under padding: pixels and features right of a sample's width are
zeroed after each block (what 'same' convolution padding would see at the image's
edge), batch-norm statistics ignore them, the LSTMs mask them, and the logits of the
frames past a sample's own length are forced to the blank. A sample's logits, loss and
decoding are therefore the same whatever width its batch is padded to.
"""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from tf_crnn.alphabet import BLANK_INDEX
from tf_crnn.config import Params, conv_output_size, pool_output_size
from tf_crnn.network.keras_compat import backend_rnn  # Keras's own loop over time

logger = logging.getLogger(__name__)

PADDED_FRAME_LOGIT = 1e4
"""Logit of the blank on frames past a sample's length (all other classes get 0):
its probability is 1 to float precision, so such frames add nothing to the CTC loss."""


def _width_mask(widths, max_width):
    """``(batch, max_width)`` bool mask of the valid columns."""
    return ops.arange(max_width)[None, :] < ops.cast(widths, "int32")[:, None]


# === Layers ===


@keras.saving.register_keras_serializable(package="tf_crnn")
class MaskedBatchNormalization(layers.BatchNormalization):
    """Batch normalisation over the valid positions of the global batch.

    The mask may have size 1 on a reduced axis (``(batch, 1, width)`` for a ``ConvBlock``'s
    columns): it is broadcast in the products rather than materialised at the input's size,
    where Keras's own masked moments cost a training step about a tenth of its time. Keras's
    layer also ignores ``synchronized`` once a mask is given; under a ``tf.distribute``
    strategy with several replicas the masked sums are summed across replicas here, so that
    each replica normalises with the statistics one device would compute on the whole batch.
    """

    def _moments(self, inputs, mask):
        if mask is None:
            return super()._moments(inputs, mask)
        weights = ops.cast(ops.expand_dims(mask, -1), inputs.dtype)
        axes = self._reduction_axes
        count = ops.sum(weights)
        for axis in axes:  # the positions each weight stands for along a broadcast axis
            if weights.shape[axis] == 1 and inputs.shape[axis] != 1:
                count = count * ops.cast(ops.shape(inputs)[axis], inputs.dtype)
        context = tf.distribute.get_replica_context()
        replicas = context is not None and context.num_replicas_in_sync > 1
        total = ops.sum(inputs * weights, axes)
        if replicas:
            total, count = context.all_reduce("sum", [total, count])
        count = count + keras.backend.epsilon()
        mean = total / count
        squares = ops.sum(ops.square(inputs - mean) * weights, axes)
        if replicas:
            squares = context.all_reduce("sum", squares)
        return mean, squares / count


@keras.saving.register_keras_serializable(package="tf_crnn")
class Normalization(layers.Layer):
    """The project's one image normalisation: ``1 - pixel / 255`` (paper 0, ink 1),
    zero right of each image's width."""

    def call(self, images, widths):
        x = 1.0 - ops.cast(images, self.compute_dtype) / 255.0
        mask = _width_mask(widths, ops.shape(x)[2])
        return x * ops.cast(mask, x.dtype)[:, None, :, None]


@keras.saving.register_keras_serializable(package="tf_crnn")
class MinimumWidth(layers.Layer):
    """Pads a batch narrower than ``width`` pixels with paper, right of every image.

    Only a training network under a ``tf.distribute`` strategy has it: a replica left without
    data at the end of a validation pass gets an empty batch of width 0, which would leave the
    recurrent layers no time step. Lines are zeroed past their own width, so no line's result
    changes.
    """

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        self.width = width

    def call(self, images):
        missing = ops.maximum(self.width - ops.shape(images)[2], 0)
        x = ops.pad(images, [[0, 0], [0, 0], [0, missing], [0, 0]], constant_values=255)
        _, height, _, channels = images.shape  # a padding known at run time hides them
        return ops.reshape(x, (ops.shape(x)[0], height, ops.shape(x)[2], channels))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "width": self.width}


@keras.saving.register_keras_serializable(package="tf_crnn")
class ConvBlock(layers.Layer):
    """Conv2D, optional BatchNorm, optional MaxPool and ReLU, aware of each image's width.

    ReLU is applied before pooling (it commutes with max pooling), so that the
    zeroed padding never wins a max over real features.

    Args:
        features: number of filters.
        kernel_size: int or ``(height, width)``.
        stride: int or ``(height, width)``.
        cnn_padding: 'same' or 'valid'.
        pool_size: int or ``(height, width)``; ``(1, 1)`` means no pooling.
        batchnorm: whether to batch-normalise the convolution output.
        separable: a depthwise-separable convolution (``SeparableConv2D``: a filter per input
            channel, then a 1x1 convolution) instead of a full one.

    Call args:
        inputs: ``(batch, height, width, channels)``.
        widths: ``(batch,)`` valid width of each sample.

    Returns:
        ``(outputs, output_widths)``.
    """

    def __init__(
        self, features, kernel_size=3, stride=1, cnn_padding="same", pool_size=2, batchnorm=False, separable=False,
        **kwargs,
    ):  # fmt: skip
        super().__init__(**kwargs)
        self.features = features
        self.kernel_size = _as_pair(kernel_size)
        self.stride = _as_pair(stride)
        self.cnn_padding = cnn_padding
        self.pool_size = _as_pair(pool_size)
        self.batchnorm = batchnorm
        self.separable = bool(separable)
        # 'same' padding is explicit and anchored at the left edge: TensorFlow's own 'same'
        # centres the padding by the input size, so a strided grid would shift with the
        # padded batch width.
        self.conv = (layers.SeparableConv2D if self.separable else layers.Conv2D)(
            features,
            self.kernel_size,
            strides=self.stride,
            padding="valid",
            use_bias=not batchnorm,
            name="conv",
        )
        self.bn = MaskedBatchNormalization(name="batch_norm") if batchnorm else None
        self.pool = (
            layers.MaxPooling2D(self.pool_size, padding="valid", name="pool") if self.pool_size != (1, 1) else None
        )

    def _conv_padding(self):
        if self.cnn_padding != "same":
            return [[0, 0], [0, 0], [0, 0], [0, 0]]
        (kh, kw) = self.kernel_size
        return [[0, 0], [(kh - 1) // 2, kh - 1 - (kh - 1) // 2], [(kw - 1) // 2, kw - 1 - (kw - 1) // 2], [0, 0]]

    def build(self, inputs_shape, widths_shape=None):
        pad = self._conv_padding()
        padded_shape = tuple(None if d is None else d + sum(p) for d, p in zip(inputs_shape, pad))
        self.conv.build(padded_shape)
        out_shape = self.conv.compute_output_shape(padded_shape)
        if self.bn is not None:
            self.bn.build(out_shape)
        if self.pool is not None:
            self.pool.build(out_shape)

    def output_width(self, widths):
        widths = conv_output_size(widths, self.kernel_size[1], self.stride[1], self.cnn_padding)
        return pool_output_size(widths, self.pool_size[1])

    def _pool(self, x):
        # Pad to whole pooling windows at the bottom/right; zeros never beat ReLU outputs.
        ph, pw = self.pool_size
        _, h, _, channels = x.shape  # static: the input height is fixed
        # No negative operands: integer division and modulo round differently in ONNX.
        x = ops.pad(x, [[0, 0], [0, (-h) % ph], [0, (pw - ops.shape(x)[2] % pw) % pw], [0, 0]])
        # A padding amount known only at run time hides every static dimension; the
        # convolutions of TFLite and ONNX need the static height and channels back.
        x = ops.reshape(x, (ops.shape(x)[0], h + (-h) % ph, ops.shape(x)[2], channels))
        return self.pool(x)

    def call(self, inputs, widths, training=None):
        x = self.conv(ops.pad(inputs, self._conv_padding()))
        conv_widths = conv_output_size(widths, self.kernel_size[1], self.stride[1], self.cnn_padding)
        mask = _width_mask(conv_widths, ops.shape(x)[2])
        if self.bn is not None:
            x = self.bn(x, training=training, mask=mask[:, None, :])
        x = ops.relu(x) * ops.cast(mask, x.dtype)[:, None, :, None]
        if self.pool is not None:
            x = self._pool(x)
        return x, pool_output_size(conv_widths, self.pool_size[1])

    def compute_output_spec(self, inputs, widths, training=None):
        def size(d, axis):
            if d is None:
                return None
            d = conv_output_size(d, self.kernel_size[axis], self.stride[axis], self.cnn_padding)
            return pool_output_size(d, self.pool_size[axis])

        b, h, w, _ = inputs.shape
        x = keras.KerasTensor((b, size(h, 0), size(w, 1), self.features), dtype=self.compute_dtype)
        return x, keras.KerasTensor(widths.shape, dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "features": self.features,
                "kernel_size": list(self.kernel_size),
                "stride": list(self.stride),
                "cnn_padding": self.cnn_padding,
                "pool_size": list(self.pool_size),
                "batchnorm": self.batchnorm,
                "separable": self.separable,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tf_crnn")
class BlankPadding(layers.Layer):
    """Forces the logits of frames past each sample's length to the CTC blank.

    The recurrent layers' mask ends here: the output is complete without it.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, logits, lengths):
        n_classes = ops.shape(logits)[-1]
        valid = _width_mask(lengths, ops.shape(logits)[1])[:, :, None]
        blank = ops.one_hot(ops.convert_to_tensor([BLANK_INDEX]), n_classes, dtype=logits.dtype)
        blank = ops.reshape(blank * PADDED_FRAME_LOGIT, (1, 1, -1))
        return ops.where(valid, logits, blank)


@keras.saving.register_keras_serializable(package="tf_crnn")
class FeatureSequence(layers.Layer):
    """``(batch, height, width, channels)`` to ``(batch, width, features)``: the one place where
    width becomes the time axis. ``mode``: ``flatten`` (features: height * channels) or
    ``max_pool`` (features: channels, the maximum over the height)."""

    def __init__(self, mode: str = "flatten", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, inputs):
        if self.mode == "max_pool":
            return ops.max(inputs, axis=1)
        x = ops.transpose(inputs, (0, 2, 1, 3))
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], inputs.shape[1] * inputs.shape[3]))

    def compute_output_shape(self, input_shape):
        features = input_shape[3] if self.mode == "max_pool" else input_shape[1] * input_shape[3]
        return (input_shape[0], input_shape[2], features)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="tf_crnn")
class ColumnMasking(layers.Layer):
    """Zeroes random spans of time steps while training (``column_masking``): spans of 1 to
    ``span`` steps start at a step with probability ``rate / span``, so about ``rate`` of the
    steps are masked. Stateless random ops: the layer has no variable, and a network that only
    reads is built without it."""

    def __init__(self, rate: float, span: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.span = span

    def call(self, sequence, training=None):
        if not training or self.rate <= 0:
            return sequence
        shape = tf.shape(sequence)
        starts = tf.random.uniform(shape[:2]) < self.rate / self.span
        # A step is masked when a span started at most ``span - 1`` steps before it.
        covered = tf.nn.max_pool1d(tf.cast(starts, tf.float32)[:, :, None], self.span, 1, "VALID")
        covered = tf.pad(covered, [[0, 0], [self.span - 1, 0], [0, 0]])[:, : shape[1]]
        return sequence * tf.cast(1.0 - covered, sequence.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "span": self.span}


@keras.saving.register_keras_serializable(package="tf_crnn")
class SequenceMask(layers.Layer):
    """``(batch,)`` lengths to a ``(batch, time)`` bool mask for the recurrent layers."""

    def call(self, sequence, lengths):
        return _width_mask(lengths, ops.shape(sequence)[1])

    def compute_output_spec(self, sequence, lengths):
        return keras.KerasTensor(sequence.shape[:2], dtype="bool")


@keras.saving.register_keras_serializable(package="tf_crnn")
class ProjectedLSTM(layers.LSTM):
    """Keras's LSTM with the input projections of all frames computed in one matmul before the
    loop over time, which then multiplies only the state: the same weights (a checkpoint of
    either layer loads into the other) and the same results, with most of the layer's FLOPs moved
    from small per-frame matmuls, slow on a CPU, into one large one.

    The input dropout mask is the same for every frame, as in Keras's cell. Configurations this
    does not cover (recurrent dropout, the per-gate ``implementation=1``) run Keras's own loop.
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if self.recurrent_dropout or cell.implementation != 2:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if training and 0.0 < cell.dropout < 1.0:
            sequences = sequences * ops.expand_dims(cell.get_dropout_mask(sequences[:, 0, :]), 1)
        projected = ops.matmul(sequences, cell.kernel)
        if cell.use_bias:
            projected = projected + cell.bias

        def step(z, states):
            h_tm1, c_tm1 = states
            z = z + ops.matmul(h_tm1, cell.recurrent_kernel)
            c, o = cell._compute_carry_and_output_fused(ops.split(z, 4, axis=1), c_tm1)
            h = o * cell.activation(c)
            return h, [h, c]

        return backend_rnn(
            step,
            projected,
            list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state],
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )


def _as_pair(value):
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


# === Functional model ===


def get_crnn_output(
    input_images,
    parameters: Params,
    input_widths=None,
    rnn_dropout: float | None = None,
    min_width: int = 0,
    ctc_shortcut: bool = False,
):
    """Builds the network on Keras inputs.

    Args:
        input_images: ``(batch, height, width, channels)`` Keras input, values in [0, 255].
        parameters: the architecture.
        input_widths: ``(batch,)`` int32 Keras input with each image's width; when
            None every image is taken to fill the whole width.
        rnn_dropout: overrides ``parameters.rnn_dropout`` (0 for a network that only reads: then
            without ``ColumnMasking`` or ``output_dropout`` either).
        min_width: pad narrower batches to this width (``MinimumWidth``); 0: never.
        ctc_shortcut: also return the logits of the CTC shortcut head (``CTCShortcutModel``).

    Returns:
        Logits ``(batch, time, n_classes)``, blank on frames past each sample's length; with
        ``ctc_shortcut``, a pair: those and the shortcut's logits of the same shape.
    """
    if min_width:
        input_images = MinimumWidth(min_width, name="minimum_width")(input_images)
    if input_widths is None:
        input_widths = ops.full((ops.shape(input_images)[0],), ops.shape(input_images)[2], dtype="int32")
    x = Normalization(name="normalize")(input_images, input_widths)
    widths = input_widths
    blocks = zip(
        parameters.cnn_features_list,
        parameters.cnn_kernel_size,
        parameters.cnn_stride_size,
        parameters.cnn_pool_size,
        parameters.cnn_batch_norm,
        parameters.cnn_separable or [False] * len(parameters.cnn_features_list),
    )
    for i, (features, kernel, stride, pool, batchnorm, separable) in enumerate(blocks):
        block = ConvBlock(
            features, kernel, stride, parameters.cnn_padding, pool, batchnorm, separable, name=f"conv_block_{i}"
        )
        x, widths = block(x, widths)
    x = FeatureSequence(parameters.column_features, name="to_sequence")(x)
    features = x
    if parameters.column_masking > 0 and rnn_dropout is None:
        x = ColumnMasking(parameters.column_masking, name="column_masking")(x)
    mask = SequenceMask(name="sequence_mask")(x, widths)
    for i, units in enumerate(parameters.rnn_units):
        dropout = parameters.rnn_dropout if rnn_dropout is None else rnn_dropout
        lstm = ProjectedLSTM(units, return_sequences=True, dropout=dropout)
        x = layers.Bidirectional(lstm, name=f"bilstm_{i}")(x, mask=mask)
    if parameters.output_dropout > 0 and rnn_dropout is None:
        x = layers.Dropout(parameters.output_dropout, name="output_dropout")(x)
    logits = layers.Dense(parameters.alphabet.n_classes, name="logits")(x)
    logits = BlankPadding(name="blank_padding", dtype="float32")(logits, widths)
    if not ctc_shortcut:
        return logits
    # Columns past a sample's width are zero (ConvBlock), as 'same' padding sees at its edge:
    # the shortcut is exact under padding too.
    shortcut = layers.Conv1D(parameters.alphabet.n_classes, 3, padding="same", name="shortcut_logits")(features)
    return logits, BlankPadding(name="shortcut_blank_padding", dtype="float32")(shortcut, widths)


OUTPUT_LAYER = "logits"
"""The output layer: one row of weights per alphabet code."""
NEW_UNIT_LOGIT_OFFSET = 10.0
"""How far below the blank's a unit new to a model starts (``select_output_rows``)."""


def copy_weights(source: keras.Model, target: keras.Model, output_rows: list[int | None] | None = None) -> None:
    """Sets each weighted layer of ``target`` to the weights of ``source``'s layer of the same name.

    A layer that ``source`` lacks keeps its weights (a training-only head such as
    ``ctc_shortcut``'s, when ``source`` is an export); so does one that ``target`` lacks. With
    ``output_rows`` (``tf_crnn.training.transfer``), the output layer's row ``i`` comes from
    ``source``'s row ``output_rows[i]``, or is new where that is None.
    """
    source_layers = {layer.name: layer for layer in source.layers if layer.weights}
    for layer in target.layers:
        if not layer.weights or layer.name not in source_layers:
            continue
        weights = source_layers[layer.name].get_weights()
        if output_rows is not None and layer.name == OUTPUT_LAYER:
            weights = list(select_output_rows(weights[0], weights[1], output_rows))
        layer.set_weights(weights)


def select_output_rows(kernel, bias, rows: list[int | None], new_row_offset: float = NEW_UNIT_LOGIT_OFFSET):
    """The output layer's ``kernel`` and ``bias`` with its codes (columns) rearranged: column ``i``
    is the source's column ``rows[i]``, or, where that is None (a unit the model never saw), a
    copy of the blank's column with its bias lowered by ``new_row_offset``: its probability
    is e^-offset of the blank's on every frame, so the best path never holds it untrained."""
    kernel, bias = np.asarray(kernel), np.asarray(bias)
    new_kernel = np.empty((kernel.shape[0], len(rows)), kernel.dtype)
    new_bias = np.empty((len(rows),), bias.dtype)
    for i, row in enumerate(rows):
        if row is None:
            new_kernel[:, i] = kernel[:, BLANK_INDEX]
            new_bias[i] = bias[BLANK_INDEX] - new_row_offset
        else:
            new_kernel[:, i] = kernel[:, row]
            new_bias[i] = bias[row]
    return new_kernel, new_bias


def build_network(
    parameters: Params,
    weights_path: str | None = None,
    rnn_dropout: float | None = None,
    min_width: int = 0,
) -> keras.Model:
    """The network as an uncompiled Keras model.

    Inputs: ``{"images": (batch, height, width, channels), "widths": (batch,) int32}``.
    Output: logits ``(batch, time, n_classes)``.

    Args:
        parameters: the architecture and alphabet.
        weights_path: a ``.weights.h5`` file to load, if any.
        rnn_dropout: overrides ``parameters.rnn_dropout``; 0 builds a network without
            dropout layers, so no training-only state (seed generators) is in its graph.
        min_width: see ``get_crnn_output`` (training under a strategy only).
    """
    height, _ = parameters.input_shape
    images = keras.Input((height, None, parameters.input_channels), name="images")
    widths = keras.Input((), dtype="int32", name="widths")
    inputs = {"images": images, "widths": widths}
    model = keras.Model(inputs, get_crnn_output(images, parameters, widths, rnn_dropout, min_width), name="crnn")
    if weights_path is not None:
        model.load_weights(weights_path)
    return model


def fold_batch_norm(network: keras.Model, parameters: Params) -> keras.Model:
    """A network that reads as ``network`` does, each convolution block's batch normalisation
    folded into its convolution's kernel and bias.

    Reading normalises with fixed statistics, a per-channel scale and shift that the convolution
    can apply itself: the normalisation's passes over the largest tensors of the network (the
    first block's output) are gone. The logits differ from ``network``'s by float rounding only
    (about 1e-6 of their size). ``network`` must be built from ``parameters`` without dropout.
    """
    if not any(parameters.cnn_batch_norm):
        return network
    plain = dataclasses.replace(parameters, cnn_batch_norm=[False] * len(parameters.cnn_batch_norm))
    folded = get_model_inference(plain, rnn_dropout=0.0)
    for layer in folded.layers:
        if not layer.weights:
            continue
        source = network.get_layer(layer.name)
        if isinstance(layer, ConvBlock) and source.bn is not None:
            # A separable convolution's last step, the 1x1 one, takes the scale.
            *first, kernel = source.conv.get_weights()
            gamma, beta, mean, variance = (w.astype("float64") for w in source.bn.get_weights())
            scale = gamma / np.sqrt(variance + source.bn.epsilon)  # what the normalisation multiplies by
            layer.conv.set_weights(
                [*first, kernel * scale.astype(kernel.dtype), (beta - mean * scale).astype(kernel.dtype)]
            )
        else:
            layer.set_weights(source.get_weights())
    return folded


get_model_inference = build_network
"""The original tf_crnn's name of ``build_network``."""


__all__ = [
    "build_network",
    "BlankPadding",
    "ColumnMasking",
    "ConvBlock",
    "FeatureSequence",
    "MaskedBatchNormalization",
    "MinimumWidth",
    "Normalization",
    "ProjectedLSTM",
    "SequenceMask",
    "NEW_UNIT_LOGIT_OFFSET",
    "OUTPUT_LAYER",
    "copy_weights",
    "fold_batch_norm",
    "get_crnn_output",
    "get_model_inference",
    "select_output_rows",
]
