"""End to end: training writes everything, learns, exports, resumes; exports read like the model."""

import csv
import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import tiny_params

from tf_crnn.config import ConfigError, Params
from tf_crnn.model import get_model_inference
from tf_crnn.network.decoding import decode_to_text, greedy_decode
from tf_crnn.reading.model import PredictionModel
from tf_crnn.records import read_csv_rows, resolve_image_path
from tf_crnn.training.checkpoint import list_checkpoints
from tf_crnn.training.pipeline import dataset_generator
from tf_crnn.training.run import OutputLock, TrainingError, get_model_train, train


def test_training_writes_the_output_layout(trained):
    params, result = trained
    out = Path(params.output_model_dir)
    assert Params.from_json_file(out / "config.json").to_dict() == params.to_dict()
    assert (out / "alphabet.json").is_file()
    for name in ("train.csv", "eval.csv", "dropped_rows.csv"):
        assert (out / "preprocessed" / name).is_file()
    assert list((out / "logs").glob("**/events.out.tfevents.*"))
    assert (out / "logs" / "history.csv").is_file()
    checkpoints = list_checkpoints(out / "checkpoints")
    assert checkpoints and checkpoints[-1].name == "epoch-0008"
    assert (checkpoints[-1] / "model.keras").is_file()
    assert (out / "checkpoints" / "best.weights.h5").is_file()
    assert (result.export_path / "saved_model.pb").is_file()
    assert result.export_path.parent == out / "export"
    assert not list((out / "export").glob(".tmp-*"))


def test_training_lowers_the_cer(trained):
    params, result = trained
    state = json.loads((list_checkpoints(Path(params.output_model_dir) / "checkpoints")[-1] / "state.json").read_text())
    cers = [h["val_cer"] for h in state["history"]]
    assert cers[0] > 0.9  # nothing read after one short epoch
    assert result.val_cer is not None and result.val_cer < 0.2 < cers[0]


def in_memory_predictions(params, weights, csv_file):
    model = get_model_inference(params, weights_path=str(weights))
    texts = []
    for features, _ in dataset_generator(csv_file, params, batch_size=8, shuffle=False, num_epochs=1):
        codes, _ = greedy_decode(model(features, training=False))
        texts += decode_to_text(codes, params.alphabet)
    return texts


def test_export_reads_exactly_like_the_in_memory_model(trained):
    params, result = trained
    out = Path(params.output_model_dir)
    eval_csv = out / "preprocessed" / "eval.csv"
    paths = [line.split(";")[0] for line in eval_csv.read_text().splitlines()]
    expected = in_memory_predictions(params, out / "checkpoints" / "best.weights.h5", eval_csv)
    model = PredictionModel(out)  # an output_model_dir means its newest export
    assert model.export_path == result.export_path
    assert model.predict(paths) == expected
    assert model.predict(paths[0]) == expected[0]
    by_bytes = PredictionModel(result.export_path, signature="serving_default")
    assert by_bytes.predict([Path(p).read_bytes() for p in paths[:4]]) == expected[:4]


@pytest.mark.slow
def test_a_process_without_tf_crnn_reads_the_savedmodel(trained):
    params, result = trained
    eval_csv = Path(params.output_model_dir) / "preprocessed" / "eval.csv"
    paths = [line.split(";")[0] for line in eval_csv.read_text().splitlines()][:6]
    script = textwrap.dedent(
        f"""
        import json, sys
        import tensorflow as tf
        model = tf.saved_model.load({str(result.export_path)!r})
        out = model.signatures["filename"](filenames=tf.constant({paths!r}))
        texts = [t.decode() for t in out["transcriptions"].numpy()]
        assert not any(m.startswith("tf_crnn") for m in sys.modules)
        print(json.dumps(texts))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == PredictionModel(result.export_path).predict(paths)


def test_evaluating_the_export_reproduces_the_logged_cer(trained):
    from tf_crnn.trust.evaluation import evaluate

    params, result = trained
    evaluation = evaluate(result.export_path, params.csv_files_eval)
    assert len(evaluation.lines) == result.n_eval
    assert abs(evaluation.filtered_cer - result.val_cer) < 1e-6


def test_evaluation_reads_lines_longer_than_training_learnt_from(trained, tmp_path):
    # max_chars_per_string chooses training lines; the network reads a line of any length.
    from tf_crnn.trust.evaluation import evaluate

    params, result = trained
    export = tmp_path / "export"
    shutil.copytree(result.export_path, export)
    config = json.loads((export / "config.json").read_text())
    (export / "config.json").write_text(json.dumps({**config, "max_chars_per_string": 2}))
    longer = sum(1 for _, _, label in read_csv_rows(params.csv_files_eval) if len(label.split("|")) - 2 > 2)
    assert longer > 0
    evaluation = evaluate(export, params.csv_files_eval)
    assert len(evaluation.lines) == result.n_eval and not evaluation.unreadable


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(trained, tmp_path):
    params, _ = trained
    out = tmp_path / "resumed"
    shutil.copytree(params.output_model_dir, out)
    (out / ".lock").unlink(missing_ok=True)
    resumed = Params(**dict(params.to_dict(), output_model_dir=str(out), restore_model=True, n_epochs=9))
    result = train(resumed, verbose=0)
    assert result.epochs_done == 9
    state = json.loads((list_checkpoints(out / "checkpoints")[-1] / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == list(range(1, 10))
    assert state["history"][-1]["val_cer"] < 0.2  # continued from trained weights, not from scratch


def test_resumed_callback_counters_survive_the_start_of_training(tmp_path):
    import keras

    from tf_crnn.training.callbacks import TrainingCheckpoint

    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=4)
    stopping = keras.callbacks.EarlyStopping(monitor="val_cer", patience=10)
    checkpoint = TrainingCheckpoint(tmp_path, {"reduce_lr": plateau, "early_stopping": stopping})
    checkpoint.load_state(
        {"callbacks": {"reduce_lr": {"wait": 3, "best": 1.5}, "early_stopping": {"wait": 7, "best": 0.1}}}
    )
    for callback in (plateau, stopping, checkpoint):  # the order of train()'s list
        callback.on_train_begin()
    assert (plateau.wait, plateau.best, stopping.wait, stopping.best) == (3, 1.5, 7, 0.1)


@pytest.mark.slow
def test_a_time_limit_stops_mid_epoch_and_exports(digits_data, tmp_path):
    params = tiny_params(digits_data, tmp_path / "model", n_epochs=3, steps_per_epoch=5000, time_limit_minutes=0.1)
    result = train(params, verbose=0)
    assert result.export_path.is_dir()
    state = json.loads((list_checkpoints(tmp_path / "model" / "checkpoints")[-1] / "state.json").read_text())
    assert state["epoch"] == 0 and 0 < state["step"] < 5000
    assert 6 <= state["history"][-1]["time_s"] < 60
    # Resumed with the same limit, the run has spent it: one batch, then the checkpoint and export.
    train(dataclasses.replace(params, restore_model=True), verbose=0)
    resumed = json.loads((list_checkpoints(tmp_path / "model" / "checkpoints")[-1] / "state.json").read_text())
    assert (resumed["epoch"], resumed["step"]) == (0, state["step"] + 1)
    assert resumed["time_s"] >= state["time_s"] >= 6


@pytest.mark.slow
def test_the_cosine_schedule_decays_the_learning_rate_over_the_run(digits_data, tmp_path):
    params = tiny_params(
        digits_data,
        tmp_path / "model",
        n_epochs=3,
        steps_per_epoch=10,
        learning_rate=0.01,
        learning_rate_schedule="cosine",
    )
    train(params, verbose=0)
    state = json.loads((list_checkpoints(tmp_path / "model" / "checkpoints")[-1] / "state.json").read_text())
    rates = [h["learning_rate"] for h in state["history"]]
    # Set before each batch: after 10, 20 and 30 of 30 steps the last rates were those of
    # steps 9, 19 and 29 on the cosine from 0.01 to 0.0001.
    expected = [0.0001 + 0.5 * 0.0099 * (1 + np.cos(np.pi * s / 30)) for s in (9, 19, 29)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)
    history = (tmp_path / "model" / "logs" / "history.csv").read_text().splitlines()
    assert "learning_rate" in history[0].split(",") and len(history) == 4


def test_a_deterministic_run_trained_twice_gives_the_same_model(digits_data, tmp_path):
    weights = []
    for name in ("first", "second"):  # shuffled and augmented lines, decoded in parallel
        params = tiny_params(
            digits_data, tmp_path / name, n_epochs=1, steps_per_epoch=12, data_augmentation=True, deterministic=True
        )
        with h5py.File(train(params, verbose=0).export_path / "model.weights.h5") as saved:
            names = []
            saved.visit(names.append)
            weights.append([saved[n][()] for n in names if isinstance(saved[n], h5py.Dataset)])
    assert len(weights[0]) > 10
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_mixed_bfloat16_trains_and_exports_a_float32_model(digits_data, tmp_path):
    import keras

    from tf_crnn.training.run import get_model_train

    params = tiny_params(
        digits_data, tmp_path / "model", n_epochs=1, steps_per_epoch=5, mixed_precision="mixed_bfloat16"
    )
    model = get_model_train(params)
    assert model.get_layer("conv_block_0").compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in model.weights)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was
    result = train(params, verbose=0)
    assert np.isfinite(result.val_cer)
    image = next(iter((digits_data["eval"].parent / "images").iterdir()))
    assert isinstance(PredictionModel(result.export_path).predict(str(image)), str)


@pytest.mark.slow
def test_a_run_with_the_ctc_shortcut_resumes_and_exports_the_reading_network(digits_data, tmp_path):
    params = tiny_params(digits_data, tmp_path / "model", n_epochs=2, steps_per_epoch=5, ctc_shortcut=0.1)
    train(dataclasses.replace(params, n_epochs=1), verbose=0)
    result = train(dataclasses.replace(params, restore_model=True), verbose=0)
    assert np.isfinite(result.val_cer)
    with open(tmp_path / "model/logs/history.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]
    network = get_model_inference(params, str(result.export_path / "model.weights.h5"), rnn_dropout=0.0)
    assert "shortcut_logits" not in {layer.name for layer in network.layers}
    image = resolve_image_path(params.csv_files_eval, next(read_csv_rows(params.csv_files_eval))[1])
    assert isinstance(PredictionModel(result.export_path).predict(image), str)


def test_a_resumed_run_clock_goes_on_from_the_checkpoint_time():
    from tf_crnn.training.callbacks import RunClock, TrainingCheckpoint

    session = [0.0]
    clock = RunClock(lambda: session[0])
    checkpoint = TrainingCheckpoint("unused", clock=clock)
    checkpoint.load_state({"epoch": 3, "time_s": 90.0})
    session[0] = 10.0
    assert clock() == 100.0
    checkpoint.load_state({"epoch": 0})  # a checkpoint of an older version: no time stored
    assert clock() == 10.0


def test_the_cosine_schedule_follows_the_time_limit():
    import keras

    from tf_crnn.training.callbacks import CosineLearningRate, RunClock

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    spent = [50.0]  # half the time budget
    schedule = CosineLearningRate(0.01, total_steps=10**6, limit_s=100, clock=lambda: spent[0])
    schedule.set_model(model)
    schedule.on_train_batch_begin(0)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.00505, rel=1e-4)
    spent[0] = 1050  # past the budget: the floor, never below
    schedule.on_train_batch_begin(0)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0001, rel=1e-4)
    # Resumed after 50 s of an earlier session: the cycle goes on, it does not start again.
    clock = RunClock(lambda: 0.0)
    clock.earlier = 50.0
    resumed = CosineLearningRate(0.01, total_steps=10**6, limit_s=100, clock=clock)
    resumed.set_model(model)
    resumed.on_train_batch_begin(0)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.00505, rel=1e-4)


@pytest.mark.slow
def test_a_nan_loss_stops_with_a_clear_error_and_no_spoilt_checkpoint(digits_data, tmp_path):
    params = tiny_params(digits_data, tmp_path / "model", n_epochs=3, steps_per_epoch=10, learning_rate=1e30)
    with pytest.raises(TrainingError, match="loss became NaN or infinite; the last good checkpoint is kept"):
        train(params, verbose=0)
    for checkpoint in list_checkpoints(tmp_path / "model" / "checkpoints"):
        state = json.loads((checkpoint / "state.json").read_text())
        assert all(np.isfinite(h["loss"]) for h in state["history"])


def test_a_used_output_dir_is_never_overwritten(trained):
    params, _ = trained
    with pytest.raises(ConfigError, match="is not empty; set restore_model=true"):
        train(params)


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    with OutputLock(tmp_path):
        with pytest.raises(TrainingError, match="in use by another training run"):
            with OutputLock(tmp_path):
                pass


def test_changing_the_architecture_on_resume_is_refused(trained, tmp_path):
    params, _ = trained
    out = tmp_path / "other"
    shutil.copytree(params.output_model_dir, out)
    changed = Params(**dict(params.to_dict(), output_model_dir=str(out), restore_model=True, rnn_units=[16]))
    with pytest.raises(ConfigError, match="rnn_units"):
        train(changed)
    for key, value in [("column_features", "max_pool"), ("ctc_shortcut", 0.1)]:
        changed = Params(**dict(params.to_dict(), output_model_dir=str(out), restore_model=True, **{key: value}))
        with pytest.raises(ConfigError, match=f"^{key}: .* use a new output_model_dir"):
            train(changed)


def test_missing_input_files_fail_before_any_work(digits_data, tmp_path):
    params = tiny_params(digits_data, tmp_path / "out", csv_files_eval=str(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match="csv_files_eval: .*nope.csv does not exist"):
        train(params)
    assert not (tmp_path / "out").exists()


def test_an_output_dir_that_cannot_be_written_fails_before_any_work(digits_data, tmp_path):
    (tmp_path / "file").write_text("")
    params = tiny_params(digits_data, tmp_path / "file" / "model")
    with pytest.raises(ConfigError, match=r"output_model_dir: cannot write to .*file/model"):
        train(params)


def test_prediction_saver_and_loader_callbacks(trained, tmp_path):
    import csv

    import keras

    from tf_crnn.training.callbacks import CustomLoaderCallback, CustomPredictionSaverCallback
    from tf_crnn.training.run import get_model_train

    params, _ = trained
    out = Path(params.output_model_dir)
    eval_csv = out / "preprocessed" / "eval.csv"
    model = get_model_train(params)
    # Loading happens when training begins: one step with zero learning rate keeps the weights.
    model.optimizer.learning_rate.assign(0.0)
    ds = dataset_generator(eval_csv, params, batch_size=8, shuffle=False, num_epochs=1)
    model.fit(ds.take(1), epochs=1, verbose=0, callbacks=[CustomLoaderCallback(out)])
    features_only = ds.map(lambda features, labels: features)
    model.predict(features_only, verbose=0, callbacks=[CustomPredictionSaverCallback(tmp_path, params)])
    with open(tmp_path / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    expected = [line.split(";")[1].replace("|", "") for line in eval_csv.read_text().splitlines()]
    assert [row["index"] for row in rows] == [str(i) for i in range(len(expected))]
    correct = sum(row["transcription"] == e for row, e in zip(rows, expected))
    assert correct >= 0.7 * len(expected)  # the loaded weights read, random ones would not
    # The loader took the newest checkpoint's weights (a zero learning rate changed none).
    saved = get_model_train(params)
    saved.load_weights(list_checkpoints(out / "checkpoints")[-1] / "model.keras")
    for loaded, expected_weights in zip(model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(loaded, expected_weights)
    assert isinstance(model, keras.Model)


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "tf_crnn", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    commands = proc.stdout.split("Commands:")[1]
    assert {"train", "predict", "evaluate"} <= {line.split()[0] for line in commands.splitlines() if line.strip()}


def test_checkpoint_restores_weights_and_optimizer_state(trained):
    from tf_crnn.training.checkpoint import restore_checkpoint
    from tf_crnn.training.run import get_model_train

    params, _ = trained
    checkpoint = list_checkpoints(Path(params.output_model_dir) / "checkpoints")[-1]
    model = get_model_train(params)
    state = restore_checkpoint(model, checkpoint)
    assert state["epoch"] == 8
    assert int(model.optimizer.iterations.numpy()) == 8 * 40
    saved = get_model_train(params)
    saved.load_weights(checkpoint / "model.keras")
    for a, b in zip(model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_tampered_checkpoint_is_a_clear_error(trained, tmp_path):
    from tf_crnn.training.checkpoint import CheckpointError, restore_checkpoint
    from tf_crnn.training.run import get_model_train

    params, _ = trained
    checkpoint = list_checkpoints(Path(params.output_model_dir) / "checkpoints")[-1]
    broken = tmp_path / checkpoint.name
    shutil.copytree(checkpoint, broken)
    data = (broken / "model.keras").read_bytes()
    (broken / "model.keras").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        restore_checkpoint(get_model_train(params), broken)


def test_a_checkpoint_loads_back_as_a_keras_model(trained):
    import keras

    params, _ = trained
    checkpoint = list_checkpoints(Path(params.output_model_dir) / "checkpoints")[-1]
    loaded = keras.saving.load_model(checkpoint / "model.keras")
    reference = get_model_train(params)
    reference.load_weights(checkpoint / "model.keras")
    features, labels = next(iter(dataset_generator(params.csv_files_eval, params, batch_size=8, shuffle=False)))
    np.testing.assert_allclose(loaded.predict(features, verbose=0), reference.predict(features, verbose=0), atol=1e-5)
    # Loss and CER metric come back with it, and count as the trained model's do.
    scores = loaded.evaluate(features, labels, verbose=0, return_dict=True)
    expected = reference.evaluate(features, labels, verbose=0, return_dict=True)
    assert scores["cer"] == pytest.approx(expected["cer"]) and scores["loss"] == pytest.approx(
        expected["loss"], rel=1e-4
    )


@pytest.mark.slow
def test_augmented_training_with_periodic_exports_pruned_to_keep_max_models(digits_data, tmp_path):
    params = tiny_params(
        digits_data, tmp_path / "model", data_augmentation=True, n_epochs=4, steps_per_epoch=5,
        save_interval=1, keep_max_models=2,
    )  # fmt: skip
    # The pipeline training uses augments: the same files, unshuffled, come out changed and wider.
    plain = next(iter(dataset_generator(params.csv_files_eval, params, batch_size=16, shuffle=False)))[0]
    augmented = next(
        iter(dataset_generator(params.csv_files_eval, params, batch_size=16, shuffle=False, data_augmentation=True))
    )[0]
    assert (augmented["widths"].numpy() >= plain["widths"].numpy()).all()
    assert augmented["widths"].numpy().sum() > plain["widths"].numpy().sum()
    result = train(params, verbose=0)
    with open(tmp_path / "model/logs/history.csv", newline="") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 4 and all(np.isfinite(losses))
    exports = sorted((tmp_path / "model/export").iterdir())
    epochs = [json.loads((e / "tf_crnn.json").read_text())["epoch"] for e in exports if e != result.export_path]
    assert epochs == [2, 3]  # saved after epochs 1, 2 and 3; the oldest pruned; epoch 4 is the final export
    assert result.export_path in exports and len(exports) == 3
    image = resolve_image_path(params.csv_files_eval, next(read_csv_rows(params.csv_files_eval))[1])
    assert isinstance(PredictionModel(result.export_path).predict(image), str)
