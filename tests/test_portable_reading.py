"""``predict --runtime onnx``: image files read with the network as ONNX and no TensorFlow, as the
SavedModel reads them (``tf_crnn.reading.portable``)."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from tf_crnn.artifacts import ONNX_FILENAME
from tf_crnn.cli import main
from tf_crnn.export.savedmodel import rewrite_export
from tf_crnn.network.calibration import Calibration, ErrorTable, LineTable, Table
from tf_crnn.network.language_model import build_lm
from tf_crnn.reading.files import predict_files
from tf_crnn.reading.portable import SHORT_RUN_LINES, PortableReader, choose_runtime, onnx_beside
from tf_crnn.records import read_csv_rows, resolve_image_path

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def with_lm(trained, portable_exports, tmp_path_factory):
    """The trained model's export with a language model strong enough to change readings, and
    the ONNX network beside it, as ``tf-crnn export --format onnx`` writes it there."""
    params, result = trained
    lm, _ = build_lm(params, order=3)
    calibration = Calibration(
        LineTable([0.0, 0.4, 1.0], [0.0, 0.5, 0.95], "product"),
        Table([0.0, 1.0], [0.0, 1.0]),
        errors=ErrorTable([0.3, 0.7, 1.0], [0.7, 0.2, 0.01], 2.0),
    )
    path = rewrite_export(
        result.export_path, tmp_path_factory.mktemp("lm") / "export", lm, calibration, lm_weight=2.0,
        lm_length_bonus=0.5,
    )  # fmt: skip
    shutil.copy(portable_exports["onnx"], path / ONNX_FILENAME)
    return path


def images(params, n=40) -> list[str]:
    rows = list(read_csv_rows(params.csv_files_eval))[:n]
    return [str(resolve_image_path(params.csv_files_eval, p)) for _, p, _ in rows]


def test_the_onnx_runtime_reads_as_the_savedmodel(trained, with_lm, tmp_path):
    params, result = trained
    paths = images(params)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    without_lm = shutil.copytree(result.export_path, tmp_path / "plain")
    shutil.copy(with_lm / ONNX_FILENAME, without_lm / ONNX_FILENAME)
    texts = {}
    for export in (with_lm, without_lm):
        theirs, skipped = predict_files(export, [*paths, str(broken)])
        ours, our_skipped = PortableReader(onnx_beside(export)).read([*paths, str(broken)], batch_size=16)
        assert [r.text for r in ours] == [r.text for r in theirs]
        np.testing.assert_allclose([r.confidence for r in ours], [r.confidence for r in theirs], atol=1e-3)
        np.testing.assert_allclose([r.expected_cer for r in ours], [r.expected_cer for r in theirs], atol=1e-3)
        # Scores sum a line's frames: the networks' last bits add up (the searches are pinned exactly in
        # tests/test_language_model.py).
        np.testing.assert_allclose([r.score for r in ours], [r.score for r in theirs], atol=0.05)
        assert [p for p, _ in our_skipped] == [p for p, _ in skipped] == [str(broken)]
        texts[export] = [r.text for r in ours]
    # The language model changes the readings: the search is part of what is compared.
    assert texts[with_lm] != texts[without_lm]


def test_predict_reads_short_runs_without_tensorflow(trained, with_lm, tmp_path):
    params, _ = trained
    paths = images(params, 12)
    code = (
        "import sys\n"
        "from tf_crnn.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as done:\n"
        "    assert done.code in (0, None), done.code\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "predict", str(with_lm), *paths],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Reading with ONNX Runtime" in done.stderr
    quick = list(csv.DictReader(io.StringIO(done.stdout)))
    slow = CliRunner().invoke(main, ["predict", str(with_lm), "--runtime", "tensorflow", *paths])
    assert slow.exit_code == 0, slow.output
    slow = list(csv.DictReader(io.StringIO(slow.stdout)))
    assert [(r["path"], r["transcription"]) for r in quick] == [(r["path"], r["transcription"]) for r in slow]
    for column in ("confidence", "expected_cer"):  # the runtimes' arithmetic differs in the last bits
        np.testing.assert_allclose([float(r[column]) for r in quick], [float(r[column]) for r in slow], atol=1e-3)
    assert len(quick) == 12


def test_the_runtime_is_chosen_by_the_run_and_refused_where_it_cannot_read(trained, with_lm, tmp_path):
    params, result = trained
    assert choose_runtime("auto", with_lm, SHORT_RUN_LINES) == "onnx"
    assert choose_runtime("auto", with_lm, SHORT_RUN_LINES + 1) == "tensorflow"
    bare = shutil.copytree(with_lm, tmp_path / "bare")
    (bare / ONNX_FILENAME).unlink()
    assert choose_runtime("auto", bare, 1) == "tensorflow"
    runner = CliRunner()
    run = runner.invoke(main, ["predict", str(bare), "--runtime", "onnx", *images(params, 2)])
    assert run.exit_code != 0 and f"has no {ONNX_FILENAME} beside its SavedModel" in run.output
    run = runner.invoke(main, ["predict", str(with_lm), "--runtime", "onnx", "--beam-width", "4", *images(params, 2)])
    assert run.exit_code != 0 and "--beam-width asks for tensorflow" in run.output
    # A quantised network only approaches the SavedModel's readings: never read in its place.
    quantised = shutil.copytree(with_lm, tmp_path / "quantised")
    run = runner.invoke(main, ["export", str(quantised), "--format", "onnx", "--quantize", "int8"])
    assert run.exit_code == 0, run.output
    run = runner.invoke(main, ["predict", str(quantised), "--runtime", "onnx", *images(params, 2)])
    assert run.exit_code != 0 and "is quantised" in run.output


def test_a_damaged_or_foreign_network_is_never_read_in_place_of_the_savedmodel(trained, with_lm, tmp_path, caplog):
    params, _ = trained
    paths = images(params, 3)
    runner = CliRunner()
    good = runner.invoke(main, ["predict", str(with_lm), "--runtime", "tensorflow", *paths])
    for name, damage in [
        ("truncated", lambda f: f.write_bytes(f.read_bytes()[:5000])),
        ("another model's", lambda f: shutil.copy(with_lm / ONNX_FILENAME, f)),
    ]:
        export = shutil.copytree(with_lm, tmp_path / name.replace(" ", "-").replace("'", ""))
        if name == "another model's":  # the same network, read as if its alphabet had one unit more
            lookup = json.loads((export / "alphabet.json").read_text())
            (export / "alphabet.json").write_text(json.dumps({**lookup, "Z": max(lookup.values()) + 1}))
        else:
            damage(export / ONNX_FILENAME)
        run = runner.invoke(main, ["predict", str(export), "--runtime", "onnx", *paths])
        assert run.exit_code == 2 and str(export / ONNX_FILENAME) in run.output, run.output
        assert f"tf-crnn export {export} --format onnx" in run.output
        assert len(run.output.strip().splitlines()) == 1
        if name == "truncated":  # auto reads with TensorFlow, saying why
            auto = runner.invoke(main, ["predict", str(export), *paths])
            assert auto.exit_code == 0 and auto.stdout == good.stdout
            assert "cannot be loaded" in caplog.text and "reading with tensorflow" in caplog.text
