"""Starting from a model: init_from, alphabet_resize, freeze, built-in models."""

import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_config, tiny_params

from tf_crnn.alphabet import Alphabet
from tf_crnn.cli import main
from tf_crnn.config import ConfigError, Params
from tf_crnn.datasets.synthetic import make_dataset
from tf_crnn.network.layers import NEW_UNIT_LOGIT_OFFSET
from tf_crnn.training.transfer import StartingPoint, plan_alphabet


@pytest.fixture(scope="module")
def letters_data(tmp_path_factory) -> dict:
    """Digits and two letters the digits model has never seen."""
    return make_dataset(
        tmp_path_factory.mktemp("letters"),
        n_train=64,
        n_eval=16,
        charset="0123456789ab",
        min_words=1,
        max_words=1,
        font_sizes=(24, 24),
        seed=3,
    )


def weights_by_layer(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers if layer.get_weights()}


def _greedy(model, features) -> np.ndarray:
    return np.argmax(model(features, training=False).numpy(), axis=-1)


# --- alphabets ---------------------------------------------------------------------------


def test_union_keeps_every_row_and_appends_the_new_units():
    model = Alphabet.from_lookup({"a": 1, "b": 2, "c": 3})
    data = Alphabet.from_lookup({"c": 1, "é": 2, "a": 3})
    plan = plan_alphabet(model, data, "union")
    assert plan.lookup == {"a": 1, "b": 2, "c": 3, "é": 4}
    assert plan.rows == [0, 1, 2, 3, None]
    assert plan.new_units == ["é"] and plan.dropped_units == []


def test_new_takes_the_data_alphabet_with_the_shared_rows():
    model = Alphabet.from_lookup({"a": 1, "b": 2, "c": 3})
    data = Alphabet.from_lookup({"c": 1, "é": 2, "a": 3})
    plan = plan_alphabet(model, data, "new")
    assert plan.lookup == {"c": 1, "é": 2, "a": 3}
    assert plan.rows == [0, 3, None, 1]
    assert plan.new_units == ["é"] and plan.dropped_units == ["b"]


def test_the_same_units_keep_the_model_codes_whatever_the_mode():
    model = Alphabet.from_lookup({"a": 1, "b": 2})
    data = Alphabet.from_lookup({"b": 1, "a": 2})
    for mode in ("fail", "union", "new"):
        plan = plan_alphabet(model, data, mode)
        assert plan.lookup == {"a": 1, "b": 2} and plan.rows == [0, 1, 2]


def test_fail_lists_the_units_on_each_side():
    model = Alphabet.from_lookup({"a": 1, "b": 2})
    data = Alphabet.from_lookup({"a": 1, "é": 2, "ß": 3})
    with pytest.raises(ConfigError) as e:
        plan_alphabet(model, data, "fail", "data/alphabet.json")
    message = str(e.value)
    assert message.startswith("alphabet_resize:")
    assert "2 only in data/alphabet.json: 'é' 'ß'" in message
    assert "1 only in the model: 'b'" in message
    assert "\n" not in message


# --- init_from ---------------------------------------------------------------------------


def test_union_keeps_the_old_rows_bit_identical_and_reads_as_before(trained, letters_data, digits_data, tmp_path):
    from tf_crnn.training.pipeline import dataset_generator
    from tf_crnn.training.run import get_model_train

    base_params, _ = trained
    params = tiny_params(
        letters_data, tmp_path / "run", init_from=base_params.output_model_dir, alphabet_resize="union"
    )
    start = StartingPoint(params)
    assert start.plan.new_units == ["a", "b"]
    run_params = tiny_params(letters_data, tmp_path / "run", lookup_alphabet_file=str(tmp_path / "merged.json"))
    start.alphabet.save(tmp_path / "merged.json")
    model = get_model_train(run_params)
    start.apply(model)

    old, new = weights_by_layer(start.source), weights_by_layer(model)
    for name in old:
        if name != "logits":
            assert all(np.array_equal(a, b) for a, b in zip(old[name], new[name])), name
    n_old = base_params.alphabet.n_classes
    kernel, bias = new["logits"]
    assert np.array_equal(kernel[:, :n_old], old["logits"][0])
    assert np.array_equal(bias[:n_old], old["logits"][1])
    assert np.allclose(bias[n_old:], old["logits"][1][0] - NEW_UNIT_LOGIT_OFFSET)

    # Zero steps of fine-tuning: the best path over the old images is the one the model had.
    features, _ = next(iter(dataset_generator(str(digits_data["eval"]), base_params, 16, shuffle=False)))
    assert np.array_equal(_greedy(model, features), _greedy(start.source, features))


def test_fine_tuning_run_adds_units_and_frozen_layers_keep_their_weights(trained, letters_data, tmp_path):
    from tf_crnn.export.savedmodel import WEIGHTS_FILENAME
    from tf_crnn.model import get_model_inference
    from tf_crnn.training.run import train
    from tf_crnn.training.transfer import load_base_model

    base_params, _ = trained
    out = tmp_path / "finetuned"
    params = tiny_params(
        letters_data,
        out,
        init_from=base_params.output_model_dir,
        alphabet_resize="union",
        freeze="cnn",
        n_epochs=1,
        steps_per_epoch=5,
    )
    result = train(params, verbose=0)
    lookup = json.loads((out / "alphabet.json").read_text())
    assert lookup == {**base_params.alphabet.lookup, "a": 11, "b": 12}
    saved = Params.from_json_file(out / "config.json")
    assert saved.lookup_alphabet_file == str(out / "alphabet.json") and saved.init_from == base_params.output_model_dir

    from tf_crnn.training.transfer import find_base_model

    before = weights_by_layer(load_base_model(find_base_model(base_params.output_model_dir)))
    run_params = Params.from_json_file(out / "config.json")
    after = weights_by_layer(get_model_inference(run_params, str(result.export_path / WEIGHTS_FILENAME)))
    for name in ("conv_block_0", "conv_block_1"):
        assert all(np.array_equal(a, b) for a, b in zip(before[name], after[name])), name
    assert not np.array_equal(before["bilstm_0"][0], after["bilstm_0"][0])


def test_frozen_batch_normalisation_stays_in_inference_mode(digits_data, tmp_path):
    from tf_crnn.training.pipeline import dataset_generator
    from tf_crnn.training.run import get_model_train

    params = tiny_params(digits_data, tmp_path / "bn", cnn_batch_norm=[True, True], freeze="cnn")
    model = get_model_train(params)
    before = weights_by_layer(model)
    model.fit(dataset_generator(str(digits_data["train"]), params, 16), steps_per_epoch=3, epochs=1, verbose=0)
    after = weights_by_layer(model)
    for name in ("conv_block_0", "conv_block_1"):  # kernels and moving statistics alike
        assert all(np.array_equal(a, b) for a, b in zip(before[name], after[name])), name
    assert not np.array_equal(before["logits"][0], after["logits"][0])


def test_restore_model_resumes_without_loading_init_from_again(trained, letters_data, tmp_path, caplog):
    from tf_crnn.training.run import train

    base_params, _ = trained
    out = tmp_path / "resumed"
    common = dict(init_from=base_params.output_model_dir, alphabet_resize="union", steps_per_epoch=3)
    train(tiny_params(letters_data, out, n_epochs=1, **common), verbose=0)
    caplog.set_level("INFO")
    train(tiny_params(letters_data, out, n_epochs=2, restore_model=True, **common), verbose=0)
    assert "init_from" in caplog.text and "not loaded again" in caplog.text
    assert json.loads((out / "alphabet.json").read_text())["b"] == 12


def test_fine_tuning_keeps_the_language_model_of_the_model_it_starts_from(trained, letters_data, tmp_path, caplog):
    from tf_crnn.export.savedmodel import export_with_lm
    from tf_crnn.network.language_model import build_lm, load_lm
    from tf_crnn.reading.model import PredictionModel
    from tf_crnn.training.run import train

    base_params, result = trained
    lm, _ = build_lm(base_params, order=3)
    base = export_with_lm(result.export_path, tmp_path / "base", lm, lm_weight=2.0, length_bonus=0.5)
    caplog.set_level("INFO")
    # Read as tf-crnn train reads a config: no lm_* key, so the model's reading settings come along.
    config = tiny_config(letters_data, tmp_path / "run", init_from=str(base), n_epochs=1, steps_per_epoch=2)
    config["csv_files_train"] = config["csv_files_eval"] = str(base_params.csv_files_eval)
    config["lookup_alphabet_file"] = str(base_params.lookup_alphabet_file)
    params = Params.from_dict(config)
    assert (params.lm_weight, params.lm_length_bonus) == (2.0, 0.5)
    assert Params.from_dict({**config, "lm_weight": 0}).lm_weight == 0  # a key set keeps its value
    export = train(params, verbose=0).export_path
    assert load_lm(export).ngram_keys.tolist() == lm.ngram_keys.tolist()
    assert PredictionModel(export).params.lm_weight == 2.0
    assert "read with the model's language model" in caplog.text
    # Resumed with the same config, the run reads as it started: with the model's language model.
    resumed = Params.from_dict({**config, "restore_model": True, "n_epochs": 2})
    assert resumed.lm_weight == 2.0
    export = train(resumed, verbose=0).export_path
    assert load_lm(export) is not None and PredictionModel(export).params.lm_weight == 2.0
    # New units: the n-gram counts in the model's codes, so the run reads greedily and says so.
    letters = Params.from_dict(
        tiny_config(letters_data, tmp_path / "letters", init_from=str(base), alphabet_resize="union")
    )
    kept, none = StartingPoint(letters).language_model(letters)
    assert none is None and kept.lm_weight == 0
    assert "language model is not kept" in caplog.text


def test_refusals_name_the_problem_before_any_work(trained, letters_data, digits_data, tmp_path):
    from tf_crnn.training.run import train

    base_params, _ = trained
    cases = [
        (dict(init_from=str(tmp_path / "nowhere")), "init_from: "),
        (dict(init_from=base_params.output_model_dir, data=letters_data), "alphabet_resize: the alphabets differ"),
        (dict(init_from=base_params.output_model_dir, rnn_units=[32]), "init_from: layer bilstm_0 has shape"),
        (dict(init_from="builtin:no-such-model"), "no built-in model builtin:no-such-model"),
    ]
    for i, (overrides, expected) in enumerate(cases):
        data = overrides.pop("data", digits_data)
        out = tmp_path / f"refused{i}"
        with pytest.raises(ConfigError) as e:
            train(tiny_params(data, out, **overrides), verbose=0)
        assert expected in str(e.value), str(e.value)
        assert "\n" not in str(e.value)
        assert not out.exists()
    shape_error = str(pytest.raises(ConfigError, train, tiny_params(
        digits_data, tmp_path / "x", init_from=base_params.output_model_dir, rnn_units=[32]
    )).value)  # fmt: skip
    assert "(256, 192)" in shape_error and "(256, 128)" in shape_error and "rnn_units [48]" in shape_error


def test_cli_refuses_a_different_alphabet_with_exit_code_2(trained, letters_data, tmp_path):
    base_params, _ = trained
    config = tmp_path / "config.json"
    tiny_params(letters_data, tmp_path / "run", init_from=base_params.output_model_dir).to_json_file(config)
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code == 2
    assert "alphabet_resize: the alphabets differ (2 only in" in result.output
    assert "'a' 'b'" in result.output


def test_alphabet_check_takes_a_model(trained, letters_data):
    base_params, _ = trained
    result = CliRunner().invoke(main, ["alphabet", "check", base_params.output_model_dir, str(letters_data["train"])])
    assert result.exit_code == 1
    assert "2 units missing from" in result.output and "'a'" in result.output and "'b'" in result.output


# --- built-in models ---------------------------------------------------------------------


@pytest.fixture
def shipped(trained, tmp_path, monkeypatch):
    """The tiny digits model shipped as builtin:digits, with a cache of its own."""
    import tf_crnn.artifacts as artifacts

    params, result = trained
    models = tmp_path / "models"
    folder = models / "digits"
    folder.mkdir(parents=True)
    for name in ("config.json", "alphabet.json", "model.weights.h5", "tf_crnn.json"):
        shutil.copy(result.export_path / name, folder / name)
    (folder / "MODEL_CARD.md").write_text("# digits\n\nReads digits.\n")
    monkeypatch.setattr(artifacts, "MODELS_DIR", models)
    monkeypatch.setenv("TF_CRNN_CACHE", str(tmp_path / "cache"))
    return result.export_path


def test_builtin_model_reads_as_its_export(shipped, digits_data):
    import tf_crnn.artifacts as artifacts
    from tf_crnn.export import savedmodel
    from tf_crnn.reading.model import PredictionModel

    images = sorted((digits_data["eval"].parent / "images").glob("eval_*.png"))[:8]
    expected = PredictionModel(shipped).predict([str(p) for p in images])
    model = PredictionModel("builtin:digits")
    assert model.predict([str(p) for p in images]) == expected
    assert str(model.export_path).startswith(os.environ["TF_CRNN_CACHE"])
    again = PredictionModel("builtin:digits")  # the cached SavedModel, not a second build
    assert again.export_path == model.export_path
    # A shipped model whose calibration (or config, language model, ...) changes is built anew.
    shutil.copy(shipped / "calibration.json", artifacts.MODELS_DIR / "digits" / "calibration.json")
    calibrated = PredictionModel("builtin:digits")
    assert calibrated.export_path != model.export_path and calibrated.calibration is not None
    # The earlier build, used a moment ago (a process started before the change may still read
    # it), stays; once unused for a day, the next build removes it.
    assert model.export_path.exists()
    long_ago = time.time() - savedmodel.KEEP_USED_S - 60
    os.utime(model.export_path.parent / savedmodel.USED_FILENAME, (long_ago, long_ago))
    changed = artifacts.MODELS_DIR / "digits" / "calibration.json"
    changed.write_text(json.dumps({**json.loads(changed.read_text()), "fitted_on": {"data": "refitted"}}))
    PredictionModel("builtin:digits")
    assert not model.export_path.parent.exists() and calibrated.export_path.exists()


def test_models_command_lists_the_shipped_models(shipped):
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    assert "builtin:digits\t10 units" in result.output and "Reads digits." in result.output


def test_models_command_says_a_language_model_reads_beside_the_greedy_validation():
    result = CliRunner().invoke(main, ["models"])
    line = next(line for line in result.output.splitlines() if line.startswith("builtin:handwriting-fr"))
    assert re.search(r"% greedy, read with a \d-gram over 157 units", line), line


def test_cli_model_argument_refuses_an_unknown_builtin(shipped, digits_data):
    result = CliRunner().invoke(main, ["evaluate", "builtin:nope", str(digits_data["eval"])])
    assert result.exit_code == 2
    assert "no built-in model builtin:nope; the package ships builtin:digits" in result.output


SHIPPED = ["printed-latin", "handwriting-fr"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_complete_small_and_packaged(name):
    import fnmatch
    import tomllib

    from tf_crnn.builtin import MODELS_DIR, get_builtin

    model = get_builtin(f"builtin:{name}")
    for required in ("config.json", "alphabet.json", "model.weights.h5", "tf_crnn.json", "MODEL_CARD.md"):
        assert (model.folder / required).is_file(), required
    assert model.size_bytes <= 20 * 2**20  # the language model included
    card = (model.folder / "MODEL_CARD.md").read_text()
    for heading in ("## Data", "## Alphabet", "## Training", "## Validation", "## Licence"):
        assert heading in card, heading
    pyproject = tomllib.loads((MODELS_DIR.parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["tf_crnn"]
    for path in model.folder.rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(MODELS_DIR.parent))
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} is not in the wheel"


@pytest.mark.slow
def test_printed_latin_reads_its_own_samples(tmp_path, monkeypatch):
    from tf_crnn.builtin import get_builtin
    from tf_crnn.trust.evaluation import evaluate

    monkeypatch.setenv("TF_CRNN_CACHE", str(tmp_path))
    samples = get_builtin("builtin:printed-latin").folder / "samples" / "samples.csv"
    result = evaluate("builtin:printed-latin", samples)
    assert len(result.lines) == 4 and result.cer <= 0.10, result.to_dict()


def test_init_from_a_weights_file_needs_its_config_beside_it(trained, digits_data, tmp_path):
    from tf_crnn.training.transfer import find_base_model

    params, result = trained
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(result.export_path / "model.weights.h5", lone / "model.weights.h5")
    with pytest.raises(ConfigError, match="has no config.json beside it"):
        find_base_model(str(lone / "model.weights.h5"))
    shutil.copy(result.export_path / "config.json", lone / "config.json")
    shutil.copy(result.export_path / "alphabet.json", lone / "alphabet.json")
    base = find_base_model(str(lone / "model.weights.h5"))
    assert base.weights == lone / "model.weights.h5" and base.params.alphabet.lookup == params.alphabet.lookup
    # An export folder and the run's folder name the same weights.
    assert find_base_model(str(result.export_path)).weights == result.export_path / "model.weights.h5"
    assert find_base_model(params.output_model_dir).weights.parent.parent.parent == Path(params.output_model_dir)
