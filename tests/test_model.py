import dataclasses

import keras
import numpy as np
import pytest
from keras import layers

from tf_crnn.config import Params
from tf_crnn.model import (
    ColumnMasking,
    ConvBlock,
    MaskedBatchNormalization,
    copy_weights,
    fold_batch_norm,
    get_model_inference,
)
from tf_crnn.network.loss import ctc_loss
from tf_crnn.training.run import get_model_train


@pytest.fixture
def params(lookup_file):
    return Params(
        input_shape=[16, 128],
        cnn_features_list=[4, 8],
        cnn_kernel_size=[3, 3],
        cnn_stride_size=[1, [1, 2]],
        cnn_pool_size=[2, [2, 1]],
        cnn_batch_norm=[True, True],
        rnn_units=[8],
        rnn_dropout=0.0,
        lookup_alphabet_file=str(lookup_file({c: i for i, c in enumerate("abcdef", start=1)})),
    )


def test_layers_have_stable_names(params):
    model = get_model_inference(params)
    names = {layer.name for layer in model.layers}
    assert {"normalize", "conv_block_0", "conv_block_1", "to_sequence", "bilstm_0", "logits", "blank_padding"} <= names
    assert model.get_layer("logits").units == params.alphabet.n_classes


def test_output_length_matches_params(params):
    model = get_model_inference(params)
    images = np.full((2, 16, 100, 1), 255, np.float32)
    logits = model({"images": images, "widths": np.array([100, 37])})
    assert logits.shape == (2, params.output_width(100), params.alphabet.n_classes)
    # Frames past the second sample's own length are pure blank.
    padded = keras.ops.convert_to_numpy(keras.ops.argmax(logits[1, params.output_width(37) :], axis=-1))
    assert (padded == 0).all()


@pytest.mark.parametrize("column_features", ["flatten", "max_pool"])
def test_logits_and_loss_do_not_depend_on_padding(params, column_features):
    params = dataclasses.replace(params, column_features=column_features)
    model = get_model_train(params)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 16, 45, 1)).astype(np.float32)
    labels = np.array([[1, 2, 3], [4, 4, 0]], np.int32)
    widths = np.array([45, 30], np.int32)
    # One training step so that batch-norm statistics are not the identity.
    model.train_on_batch({"images": images, "widths": widths}, labels)
    base = model({"images": images, "widths": widths}, training=False)
    padded_images = np.concatenate([images, rng.integers(0, 256, (2, 16, 83, 1)).astype(np.float32)], axis=2)
    padded = model({"images": padded_images, "widths": widths}, training=False)
    t = base.shape[1]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(padded[:, :t]), keras.ops.convert_to_numpy(base), atol=1e-4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ctc_loss(labels, padded)),
        keras.ops.convert_to_numpy(ctc_loss(labels, base)),
        rtol=1e-4,
    )


def test_conv_block_config_round_trip():
    block = ConvBlock(8, (3, 5), (1, 2), "valid", (2, 1), True, name="conv_block_3")
    clone = ConvBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    assert block.output_width(20) == 8  # valid 5-wide kernel, stride 2: (20-5)//2+1


def test_impossible_labels_do_not_make_the_loss_infinite(params):
    logits = np.zeros((1, 2, params.alphabet.n_classes), np.float32)
    loss = keras.ops.convert_to_numpy(ctc_loss(np.array([[1, 2, 3, 4]]), logits))
    assert np.isfinite(loss).all()


def test_max_pooled_columns_feed_the_recurrent_layers_channels_only(params):
    flat = get_model_inference(params)
    pooled = get_model_inference(dataclasses.replace(params, column_features="max_pool"))
    assert flat.get_layer("to_sequence").output.shape[-1] == 4 * 8  # height 16 pooled twice: 4, x 8 channels
    assert pooled.get_layer("to_sequence").output.shape[-1] == 8


def test_column_masking_hides_spans_while_training_only(params):
    masking = ColumnMasking(0.3, span=4)
    sequence = np.ones((64, 50, 3), np.float32)
    masked = keras.ops.convert_to_numpy(masking(sequence, training=True))
    hidden = masked[:, :, 0] == 0
    assert 0.2 < hidden.mean() < 0.4
    assert (masked == masked[:, :, :1]).all()  # whole time steps, every feature
    runs = np.diff(np.concatenate([np.zeros((64, 1)), hidden, np.zeros((64, 1))], axis=1), axis=1)
    assert (hidden.sum() / (runs == 1).sum()) > 1.5  # spans, not single steps
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(masking(sequence, training=False)), sequence)
    # The training network has it; the network that reads has none, and takes its weights.
    params = dataclasses.replace(params, column_masking=0.2)
    training = get_model_train(params)
    assert "column_masking" in {layer.name for layer in training.layers}
    reading = get_model_inference(params, rnn_dropout=0.0)
    assert "column_masking" not in {layer.name for layer in reading.layers}
    reading.set_weights(training.get_weights())


def test_output_dropout_is_in_the_training_network_only(params):
    params = dataclasses.replace(params, output_dropout=0.5, rnn_dropout=0.0)
    training = get_model_inference(params)
    dropout = training.get_layer("output_dropout")
    assert training.layers[training.layers.index(dropout) + 1].name == "logits"
    x = {
        "images": np.random.default_rng(0).uniform(0, 255, (2, 16, 64, 1)).astype(np.float32),
        "widths": np.array([64, 40], np.int32),
    }
    # Batch norm uses the batch's statistics while training, the same twice: only dropout differs.
    first, second = (keras.ops.convert_to_numpy(training(x, training=True)) for _ in range(2))
    assert not np.allclose(first, second, atol=1e-4)
    read = keras.ops.convert_to_numpy(training(x, training=False))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(training(x, training=False)), read)
    reading = get_model_inference(params, rnn_dropout=0.0)
    assert "output_dropout" not in {layer.name for layer in reading.layers}
    reading.set_weights(training.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reading(x)), read, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_projected_lstm_computes_what_keras_lstm_computes(go_backwards):
    import tensorflow as tf

    from tf_crnn.model import ProjectedLSTM

    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(3, 9, 5)), tf.float32)
    mask = tf.constant(np.arange(9)[None, :] < np.array([9, 6, 2])[:, None])
    ours = ProjectedLSTM(4, return_sequences=True, go_backwards=go_backwards)
    theirs = layers.LSTM(4, return_sequences=True, go_backwards=go_backwards)
    ours.build(x.shape)
    theirs.build(x.shape)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = ours(x, mask=mask), theirs(x, mask=mask)
        loss_a, loss_b = tf.reduce_sum(a * a), tf.reduce_sum(b * b)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    np.testing.assert_allclose(tape.gradient(loss_a, x).numpy(), tape.gradient(loss_b, x).numpy(), atol=1e-4)
    for g, h in zip(tape.gradient(loss_a, ours.trainable_weights), tape.gradient(loss_b, theirs.trainable_weights)):
        np.testing.assert_allclose(g.numpy(), h.numpy(), atol=1e-4)
    assert np.abs(a.numpy()).max() > 0.1  # not a trivial zero output
    # Dropout while training: one mask for every frame, so the layer trains and differs from inference.
    dropping = ProjectedLSTM(4, return_sequences=True, dropout=0.5)
    dropping.build(x.shape)
    dropping.set_weights(weights)
    assert not np.allclose(dropping(x, training=True).numpy(), dropping(x, training=False).numpy())


def test_ctc_shortcut_adds_its_loss_while_training_and_stays_out_of_the_reading_network(params, tmp_path):
    from tf_crnn.model import CTCShortcutModel, copy_weights

    params = dataclasses.replace(params, ctc_shortcut=0.5)
    model = get_model_train(params)
    assert isinstance(model, CTCShortcutModel)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 16, 45, 1)).astype(np.float32)
    features = {"images": images, "widths": np.array([45, 30], np.int32)}
    labels = np.array([[1, 2, 3], [4, 4, 0]], np.int32)
    logits, shortcut = model(features, training=True)
    assert shortcut.shape == logits.shape
    # The shortcut is exact under padding, as the network is.
    wider = dict(features, images=np.concatenate([images, np.zeros((2, 16, 40, 1), np.float32)], axis=2))
    _, padded = model(wider, training=True)
    np.testing.assert_allclose(padded[:, : shortcut.shape[1]].numpy(), shortcut.numpy(), atol=1e-4)
    # Its loss is added with its weight to the network's.
    main, extra = (float(keras.ops.mean(ctc_loss(labels, x))) for x in (logits, shortcut))
    assert extra > 0
    total = model.compute_loss(features, labels, (logits, shortcut))
    assert float(total) == pytest.approx(main + 0.5 * extra, rel=1e-5)
    # Validation, callbacks and exports see the network's logits only.
    assert model(features, training=False).shape == logits.shape
    scores = model.evaluate(features, labels, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(float(keras.ops.mean(ctc_loss(labels, model(features)))), rel=1e-4)
    # A training step trains the shortcut and, through it, the convolutions.
    before = model.get_layer("shortcut_logits").get_weights()[0].copy()
    model.train_on_batch(features, labels)
    assert not np.allclose(model.get_layer("shortcut_logits").get_weights()[0], before)
    reading = get_model_inference(params, rnn_dropout=0.0)
    assert "shortcut_logits" not in {layer.name for layer in reading.layers}
    copy_weights(model, reading)
    np.testing.assert_allclose(reading(features).numpy(), model(features, training=False).numpy(), atol=1e-6)
    # A checkpoint of it loads back as the same training network.
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, CTCShortcutModel) and loaded.shortcut_weight == 0.5
    np.testing.assert_allclose(loaded(features).numpy(), model(features).numpy(), atol=1e-6)


def test_masked_batch_norm_statistics_are_those_of_the_valid_columns():
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, (3, 4, 10, 5)).astype(np.float32)
    widths = np.array([10, 6, 1])
    columns = np.arange(10)[None, :] < widths[:, None]  # (batch, width)
    bn = MaskedBatchNormalization(momentum=0.0)
    bn(x, training=True, mask=columns[:, None, :])  # one row standing for every row
    valid = x.transpose(0, 2, 1, 3)[columns].reshape(-1, 5)  # (positions, channels)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), valid.mean(0), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), valid.var(0), rtol=1e-4)


def test_folded_batch_norm_reads_as_the_network_does(params):
    model = get_model_train(params)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 16, 61, 1)).astype(np.float32)
    widths = np.array([61, 40, 23], np.int32)
    # Training steps move the statistics, so that folding them in is not the identity.
    for _ in range(3):
        model.train_on_batch({"images": images, "widths": widths}, np.array([[1, 2], [3, 0], [4, 5]], np.int32))
    network = get_model_inference(params, rnn_dropout=0.0)
    copy_weights(model, network)
    folded = fold_batch_norm(network, params)
    assert [block.bn for block in _blocks(folded)] == [None, None]
    inputs = {"images": images, "widths": widths}
    expected = keras.ops.convert_to_numpy(network(inputs, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(folded(inputs, training=False)), expected, atol=1e-4)
    # The network itself is left as it was: its weights are what an export saves.
    assert all(isinstance(block.bn, MaskedBatchNormalization) for block in _blocks(network))


def _blocks(model):
    return [layer for layer in model.layers if isinstance(layer, ConvBlock)]


def test_the_original_public_names_still_name_the_same_things():
    """Code written against the original tf_crnn keeps working under the module names it used."""
    from tf_crnn import callbacks, config, data_handler, loader, model, preprocessing
    from tf_crnn.data import preprocessing as cleaning
    from tf_crnn.network import layers
    from tf_crnn.reading import files
    from tf_crnn.reading import model as reading_model
    from tf_crnn.training import callbacks as training_callbacks
    from tf_crnn.training import pipeline

    assert model.get_model_inference is layers.build_network
    assert model.get_model_train.__module__ == "tf_crnn.training.system"
    assert config.import_params_from_json is config.read_config
    assert callbacks.CustomSavingCallback is training_callbacks.PeriodicExport
    assert loader.PredictionModel is reading_model.PredictionModel and loader.predict_files is files.predict_files
    assert data_handler.dataset_generator is pipeline.dataset_generator
    assert data_handler.padding_inputs_width is pipeline.padding_inputs_width
    assert preprocessing.data_preprocessing is cleaning.data_preprocessing
    assert dataclasses.is_dataclass(config.Params)
