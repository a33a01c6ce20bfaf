import json

import pytest

from tf_crnn.config import ConfigError, Params, import_params_from_json, parse_overrides


def test_defaults_are_the_originals():
    p = Params()
    assert p.input_shape == (96, 1400)
    assert p.cnn_features_list == [16, 32, 64, 96, 128]
    assert p.cnn_pool_size == [(2, 2), (2, 2), (2, 2), (2, 2), (1, 1)]
    assert p.rnn_units == [256, 256]
    assert (p.csv_delimiter, p.string_split_delimiter, p.blank_symbol) == (";", "|", "$")
    assert (p.n_epochs, p.train_batch_size, p.eval_batch_size, p.learning_rate) == (50, 64, 128, 1e-4)
    assert (p.optimizer, p.evaluate_every_epoch, p.save_interval, p.restore_model) == ("adam", 5, 20, False)
    assert p.downscale_factor == 16


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="unknown key 'n_epoch'; did you mean 'n_epochs'"):
        Params.from_dict({"n_epoch": 3})


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("optimizer", "sgd", "optimizer: must be one of adam, rms, ada, got 'sgd'"),
        ("learning_rate_schedule", "step", "learning_rate_schedule: must be one of plateau, cosine, got 'step'"),
        ("input_channels", 2, "input_channels"),
        ("learning_rate", -1, "learning_rate"),
        ("n_epochs", "5", "n_epochs: must be a whole number, got '5'"),
        ("data_augmentation", "yes", "data_augmentation"),
        ("output_dropout", 1.0, "output_dropout: must be a number in"),
        ("input_shape", [32], "input_shape"),
        ("cnn_kernel_size", [3, 3], "cnn_kernel_size: has 2 entries but cnn_features_list has 5"),
        ("csv_delimiter", "|", "string_split_delimiter: must differ from csv_delimiter"),
        ("save_every_steps", -5, "save_every_steps: must be a non-negative integer, got -5"),
        ("time_limit_minutes", "1h", "time_limit_minutes: must be a number, got '1h'"),
    ],
)
def test_invalid_values_name_the_field(key, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        Params(**{key: value})


def test_impossible_architecture_is_refused():
    with pytest.raises(ConfigError, match="input_shape: height 8 is too small"):
        Params(input_shape=[8, 100], cnn_padding="valid")


def test_to_dict_round_trips_through_json(tmp_path):
    files = [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    p = Params(input_shape=[64, 256], cnn_stride_size=[1, [1, 2], 1, 1, 1], csv_files_train=files)
    path = tmp_path / "config.json"
    p.to_json_file(path)
    q = Params.from_json_file(path)
    assert q.to_dict() == p.to_dict()
    assert json.loads(path.read_text())["cnn_stride_size"][1] == [1, 2]
    assert p.show_experiment_params() == p.to_dict()


def test_relative_paths_are_read_from_the_config_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"csv_files_train": ["a.csv", "sub/b.csv"], "lookup_alphabet_file": "alphabet.json",
                    "output_model_dir": "../runs/m", "init_from": "builtin:printed-latin", "csv_files_eval": "/abs.csv"})
    )  # fmt: skip
    monkeypatch.chdir(tmp_path / "..")
    p = Params.from_json_file(folder / "config.json", lm_text="texts.txt")
    assert p.csv_files_train == [str(folder / "a.csv"), str(folder / "sub" / "b.csv")]
    assert p.lookup_alphabet_file == str(folder / "alphabet.json")
    assert p.output_model_dir == str(tmp_path / "runs" / "m")
    assert p.init_from == "builtin:printed-latin" and p.csv_files_eval == "/abs.csv"
    assert p.lm_text == "texts.txt"  # an override is the caller's: relative to the current folder


def test_from_json_file_with_overrides_and_errors(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"n_epochs": 3}))
    assert Params.from_json_file(path, **parse_overrides(["n_epochs=7", "optimizer=rms"])).n_epochs == 7
    with pytest.raises(ConfigError, match="does not exist"):
        Params.from_json_file(tmp_path / "missing.json")
    path.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Params.from_json_file(path)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["n_epochs"])


def test_output_width_follows_the_layers():
    p = Params(
        input_shape=[32, 800],
        cnn_features_list=[8, 8, 8],
        cnn_kernel_size=[3, 3, 3],
        cnn_stride_size=[1, [1, 2], 1],
        cnn_pool_size=[2, [2, 1], [1, 2]],
        cnn_batch_norm=[False] * 3,
    )
    assert p.downscale_factor == 8
    assert p.output_width(100) == 13  # ceil(100/2)=50 -> stride 2: 25 -> pool 2: 13
    assert p.feature_height == 8


def test_import_params_from_json(tmp_path):
    Params(n_epochs=9).to_json_file(tmp_path / "config.json")
    assert import_params_from_json(model_directory=tmp_path)["n_epochs"] == 9
    assert import_params_from_json(json_filename=tmp_path / "config.json")["n_epochs"] == 9
    with pytest.raises(ValueError):
        import_params_from_json()


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("learning_rate", True, "learning_rate: must be a number, got True"),
        ("time_limit_minutes", "20", "time_limit_minutes: must be a number"),
        ("n_epochs", 5.0, "n_epochs: must be a whole number, got 5.0"),
        ("seed", False, "seed: must be a whole number"),
        ("restore_model", 1, "restore_model: must be true or false, got 1"),
        ("data_augmentation", "yes", "data_augmentation: must be true or false"),
        ("init_from", 3, "init_from: must be a string"),
        ("lm_text", 0, "lm_text: must be a string"),
    ],
)
def test_every_scalar_key_refuses_a_value_of_another_type(key, value, message):
    with pytest.raises(ConfigError) as error:
        Params(**{key: value})
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("value", [True, 3, ["m"]])
def test_an_init_from_of_another_type_is_named_before_its_model_is_looked_for(value):
    with pytest.raises(ConfigError, match="init_from: must be"):
        Params.from_dict({"init_from": value})
