"""The tf-crnn command as a user runs it."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import tiny_config, tiny_params

from tf_crnn.cli import main
from tf_crnn.records import read_csv_rows, resolve_image_path


@pytest.fixture
def runner():
    return CliRunner()


def test_help_lists_the_commands(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    # The names in the Commands section, not anywhere in the text (the group's docstring names some).
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    expected = {"train", "predict", "evaluate", "export", "alphabet", "import", "prepare-iam", "synth", "demo"}
    assert expected <= listed
    for command in expected:
        sub = runner.invoke(main, [command, "--help"])
        assert sub.exit_code == 0 and sub.output.startswith(f"Usage: main {command} "), command


def test_train_config_errors_are_one_line_with_exit_code_2(runner, tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"n_epoch": 3}))
    result = runner.invoke(main, ["train", str(config)])
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {config}: unknown key 'n_epoch'; did you mean 'n_epochs'?"
    config.write_text(json.dumps({"optimizer": "sgd"}))
    result = runner.invoke(main, ["train", str(config)])
    assert result.exit_code == 2 and "optimizer: must be one of adam, rms, ada, got 'sgd'" in result.output
    result = runner.invoke(main, ["train", str(tmp_path / "missing.json")])
    assert result.exit_code == 2 and "missing.json does not exist" in result.output
    assert "Traceback" not in result.output


_FIVE_BLOCKS = {
    "cnn_features_list": [4], "cnn_kernel_size": [3], "cnn_stride_size": [1], "cnn_pool_size": [2],
    "cnn_batch_norm": [False],
}  # fmt: skip


def _wide_code(data, tmp_path):
    lookup = json.loads(Path(data["alphabet"]).read_text(encoding="utf-8"))
    lookup[next(iter(lookup))] = 10_000_000
    (tmp_path / "alphabet.json").write_text(json.dumps(lookup), encoding="utf-8")
    return {"lookup_alphabet_file": str(tmp_path / "alphabet.json")}


def _csv(tmp_path, text: str, encoding: str) -> dict:
    (tmp_path / "train.csv").write_text(text, encoding=encoding)
    return {"csv_files_train": str(tmp_path / "train.csv")}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (lambda data, tmp: {"input_shape": [8, 800], **{k: [v[0]] * 5 for k, v in _FIVE_BLOCKS.items()}},
         "input_shape: at height 8 a character is about 4 px wide, but the convolution blocks emit one step per 32 px"),
        (_wide_code, "code of '0' is 10000000; codes must be at most 100000"),
        (lambda data, tmp: _csv(tmp, Path(data["train"]).read_text(encoding="utf-8"), "utf-16"),
         "train.csv is not UTF-8 text (UTF-16 or UTF-32"),
        (lambda data, tmp: _csv(tmp, "\n\n", "utf-8"), "train.csv has no rows"),
    ],
    ids=["pools-too-wide-for-the-height", "code-too-large", "utf16-csv", "empty-csv"],
)  # fmt: skip
def test_a_bad_config_is_refused_in_one_line_before_any_data_is_read(digits_data, tmp_path, overrides, message):
    """Judged whole from the config, its alphabet and its files' heads: no row is read, nothing written."""
    config = tmp_path / "config.json"
    out = tmp_path / "run"
    config.write_text(json.dumps(tiny_config(digits_data, out, **overrides(digits_data, tmp_path))))
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "dropped" not in result.output and not out.exists()


def test_alphabet_build_and_check(runner, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a.png;|x|y|\nb.png;|y|z|\n")
    lookup = tmp_path / "lookup.json"
    result = runner.invoke(main, ["alphabet", "build", str(data), "-o", str(lookup)])
    assert result.exit_code == 0, result.output
    assert json.loads(lookup.read_text()) == {"x": 1, "y": 2, "z": 3}
    assert runner.invoke(main, ["alphabet", "check", str(lookup), str(data)]).exit_code == 0
    lookup.write_text(json.dumps({"x": 1}))
    result = runner.invoke(main, ["alphabet", "check", str(lookup), str(data)])
    assert result.exit_code == 1
    assert "'y'\t2 times" in result.output and f"{data}:1" in result.output


def copy_eval_images(params, folder: Path, n: int) -> Path:
    """The first ``n`` validation images of the trained fixture, copied into a new ``folder``."""
    folder.mkdir()
    for p in sorted((Path(params.csv_files_eval).parent / "images").glob("eval_*.png"))[:n]:
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


def test_predict_writes_the_format_its_output_names_and_sidecars_import_reads(runner, trained, tmp_path):
    params, result = trained
    folder = copy_eval_images(params, tmp_path / "lines", 3)
    csv_out, txt_out = tmp_path / "out.csv", tmp_path / "out.txt"
    for out in (csv_out, txt_out):
        r = runner.invoke(main, ["predict", str(result.export_path), str(folder), "-o", str(out)])
        assert r.exit_code == 0, r.output
    readings = [row["transcription"] for row in csv.DictReader(csv_out.open())]
    assert txt_out.read_text().splitlines() == readings  # plain text, one reading a line, in order
    r = runner.invoke(main, ["predict", str(result.export_path), str(folder), "-o", str(tmp_path / "out.json")])
    assert r.exit_code == 2 and "out.json" in r.output and ".jsonl" in r.output
    assert not (tmp_path / "out.json").exists()

    r = runner.invoke(main, ["predict", str(result.export_path), str(folder), "--sidecar"])
    assert r.exit_code == 0, r.output
    sidecars = sorted(folder.glob("*.pred.txt"))
    assert [p.name for p in sidecars] == ["eval_00000.pred.txt", "eval_00001.pred.txt", "eval_00002.pred.txt"]
    assert [p.read_text().strip() for p in sidecars] == readings
    # The correct-and-retrain loop: corrected readings become NAME.gt.txt, which import reads.
    for sidecar in sidecars:
        sidecar.rename(sidecar.with_name(sidecar.name.replace(".pred.txt", ".gt.txt")))
    r = runner.invoke(main, ["import", "folder", str(folder), "-o", str(tmp_path / "data"), "--split", "1,0"])
    assert r.exit_code == 0, r.output
    assert len(list(csv.reader((tmp_path / "data" / "train.csv").open(), delimiter=";"))) == 3


def test_predict_folder_and_csv_and_evaluate(runner, trained, tmp_path, caplog):
    params, result = trained
    folder = copy_eval_images(params, tmp_path / "lines", 3)
    (folder / "broken.png").write_bytes(b"not a png")
    data = (folder / "eval_00001.png").read_bytes()
    (folder / "eval_00001_truncated.png").write_bytes(data[: len(data) // 2])  # a valid header: fails in the graph
    out = tmp_path / "out.csv"
    r = runner.invoke(main, ["predict", str(result.export_path), str(folder), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "broken.png: not an image file" in caplog.text
    assert "eval_00001_truncated.png: image cannot be decoded" in caplog.text
    rows = list(csv.DictReader(out.open()))
    assert [Path(row["path"]).name for row in rows] == ["eval_00000.png", "eval_00001.png", "eval_00002.png"]
    assert all(0 < float(row["confidence"]) <= 1 for row in rows)

    jsonl = tmp_path / "out.jsonl"
    r = runner.invoke(main, ["predict", params.output_model_dir, params.csv_files_eval, "-o", str(jsonl)])
    assert r.exit_code == 0, r.output
    assert len(jsonl.read_text().splitlines()) == result.n_eval

    report = tmp_path / "report.csv"
    r = runner.invoke(main, ["evaluate", str(result.export_path), params.csv_files_eval, "--report", str(report)])
    assert r.exit_code == 0, r.output
    assert f"CER: {result.val_cer:.4f}" in r.output
    assert "WER:" in r.output and "Line accuracy:" in r.output
    lines = list(csv.DictReader(report.open()))
    errors = [int(line["char_errors"]) for line in lines]
    assert errors == sorted(errors, reverse=True) and len(lines) == result.n_eval


def run_training_py(config, *overrides):
    """``python training.py with CONFIG OVERRIDES...`` at the repository root, as the original README says."""
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "training.py", "with", str(config), *overrides]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_sacred_entry_point_trains(digits_data, tmp_path):
    params = tiny_params(digits_data, tmp_path / "model", n_epochs=1, steps_per_epoch=5)
    config = tmp_path / "config.json"
    params.to_json_file(config)
    proc = run_training_py(config, "n_epochs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["n_epochs"] == 2
    assert list((tmp_path / "model" / "export").iterdir())
    bad = run_training_py(config, "optimizer=sgd")
    assert bad.returncode == 2
    assert "optimizer: must be one of adam, rms, ada, got 'sgd'" in bad.stderr


def test_demo_never_deletes_a_folder_it_did_not_make(runner, tmp_path, monkeypatch):
    precious = tmp_path / "mine" / "precious.txt"
    precious.parent.mkdir()
    precious.write_text("keep me")
    result = runner.invoke(main, ["demo", "--output-dir", str(precious.parent)])
    assert result.exit_code == 2 and "was not made by tf-crnn demo" in result.output
    assert precious.read_text() == "keep me"

    # An earlier demo's folder (it holds the marker) is replaced.
    from tf_crnn import demo

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / demo.DEMO_MARKER).write_text("")
    (earlier / "old.txt").write_text("")

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "make_dataset", stop)
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(earlier)
    assert sorted(p.name for p in earlier.iterdir()) == [demo.DEMO_MARKER]


@pytest.mark.slow
def test_the_wheel_ships_what_the_package_reads_at_run_time(tmp_path):
    import zipfile

    from tf_crnn import __version__
    from tf_crnn.demo import DEMO_CONFIG

    root = Path(__file__).parents[1]
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(root)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("tf_crnn-*.whl")
    assert wheel.name.startswith(f"tf_crnn-{__version__}-")  # the version is stated once
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tf_crnn/configs/demo.json" in names and "tf_crnn/datasets/importers.py" in names
    assert json.loads(DEMO_CONFIG.read_text())["n_epochs"] > 0


def test_synth_renders_given_texts_in_given_fonts(tmp_path):
    import matplotlib

    font = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSerif.ttf")
    texts = tmp_path / "texts.txt"
    texts.write_text("Ab cd\n\nWxyz 42!\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["synth", str(out), "--n-train", "0", "--n-eval", "3", "--texts", str(texts), "--font", font, "--degrade"]
    )
    assert result.exit_code == 0, result.output
    rows = (out / "val.csv").read_text().splitlines()
    assert [r.split(";", 1)[1] for r in rows] == ["|A|b| |c|d|", "|W|x|y|z| |4|2|!|", "|A|b| |c|d|"]
    assert all(line.endswith(";" + font) for line in (out / "fonts.csv").read_text().splitlines())
    assert set(json.loads((out / "alphabet.json").read_text())) == set("Ab cdWxyz42!")
    # A text the font cannot draw is refused, naming the text file.
    (tmp_path / "cjk.txt").write_text("\u6f22\n", encoding="utf-8")
    bad = CliRunner().invoke(main, ["synth", str(tmp_path / "b"), "--texts", str(tmp_path / "cjk.txt"), "--font", font])
    assert bad.exit_code == 1 and "cjk.txt" in bad.output and "no font given has glyphs" in bad.output


def test_commands_print_no_tensorflow_noise_without_verbose(trained, tmp_path):
    """stderr holds the command's own lines only: no TensorFlow C++ or Python notices."""
    params, result = trained
    tf_crnn = Path(sys.executable).parent / "tf-crnn"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    commands = [
        ["predict", str(result.export_path), params.csv_files_eval, "-o", str(tmp_path / "out.csv")],
        ["evaluate", str(result.export_path), params.csv_files_eval],
    ]
    noise = re.compile(r"^([IWEF]\d{4} |WARNING:|.*(oneDNN|cuda|absl|tensorflow/))", re.I)
    for args in commands:
        run = subprocess.run([tf_crnn, *args], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-2000:]
        assert not [line for line in run.stderr.splitlines() if noise.match(line)], (args[0], run.stderr)
    verbose = subprocess.run([tf_crnn, "-v", *commands[0]], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert verbose.returncode == 0 and any(noise.match(line) for line in verbose.stderr.splitlines())


def test_tensorflow_loads_without_matplotlib_which_the_report_still_imports():
    """Keras imports matplotlib's pyplot with TensorFlow, where installed, to draw galleries no
    command draws: the commands load TensorFlow without it, and the report imports it after."""
    pytest.importorskip("matplotlib")
    code = (
        "import sys\n"
        "from tf_crnn.cli.common import import_tensorflow_silently\n"
        "import_tensorflow_silently()\n"
        "print('tensorflow' in sys.modules, 'matplotlib' in sys.modules)\n"
        "import matplotlib.pyplot\n"
        "print(matplotlib.pyplot.figure is not None)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True", "False", "True"]


def test_reading_commands_end_at_once_with_their_output_and_status(trained, tmp_path):
    """``tf-crnn predict`` ends its process without the interpreter's slow ending (``cli.run``):
    what it printed to a pipe is all there, and its exit status is the command's."""
    params, result = trained
    tf_crnn = Path(sys.executable).parent / "tf-crnn"
    images = [resolve_image_path(params.csv_files_eval, p) for _, p, _ in read_csv_rows(params.csv_files_eval)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe's output is then buffered
    run = subprocess.run(
        [tf_crnn, "predict", str(result.export_path), *images], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = list(csv.reader(run.stdout.splitlines()))
    assert rows[0] == ["path", "transcription", "confidence", "expected_cer"]
    assert sorted(r[0] for r in rows[1:]) == sorted(images)
    missing = subprocess.run([tf_crnn, "predict", str(result.export_path), str(tmp_path / "none.png")],
                             capture_output=True, text=True, env=env)  # fmt: skip
    assert missing.returncode == 2 and "none.png" in missing.stderr
