"""The character n-gram language model: training, its tables in TensorFlow, beam search with it,
and exports that read with it."""

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tf_crnn.cli import main
from tf_crnn.export.savedmodel import export_with_lm
from tf_crnn.network import language_model, ngram
from tf_crnn.network.decoding import beam_search_decode
from tf_crnn.network.language_model import (
    CharNgram,
    NgramTables,
    build_lm,
    lm_beam_search,
    load_lm,
    merge_blank_runs,
    train_ngram,
)
from tf_crnn.reading.files import predict_files
from tf_crnn.reading.model import PredictionModel
from tf_crnn.records import read_csv_rows, resolve_image_path


@pytest.fixture(scope="module")
def small_lm():
    rng = random.Random(0)
    sequences = [[rng.choice([1, 2, 2, 3, 4]) for _ in range(rng.randint(1, 12))] for _ in range(300)]
    return train_ngram(sequences, n_units=5, order=4)


@pytest.mark.parametrize("context", [[], [1], [2, 2], [3, 1, 2], [5, 5, 5], [4, 4, 4, 4]])
def test_probabilities_of_every_next_symbol_sum_to_one(small_lm, context):
    total = sum(np.exp(small_lm.log_prob(context, c)) for c in range(1, small_lm.boundary + 1))
    assert total == pytest.approx(1.0, abs=1e-6)
    # Unit 5 never occurs in training, yet keeps a chance (add-one unigrams).
    assert -40 < small_lm.log_prob(context, 5) < np.log(0.05)


def test_frequent_sequences_are_more_probable(small_lm):
    assert small_lm.line_log_prob([2, 2]) > small_lm.line_log_prob([5, 5])


def test_tensorflow_tables_are_the_reference(small_lm, tmp_path):
    small_lm.save(tmp_path / "lm.npz")
    loaded = CharNgram.load(tmp_path / "lm.npz")
    tables = NgramTables(loaded)
    rng = np.random.default_rng(1)
    # Contexts as beam search makes them: a line's last units, the boundary before its start.
    prefixes = [rng.integers(1, small_lm.boundary, rng.integers(0, 6)).tolist() for _ in range(200)]
    contexts = [([small_lm.boundary] * (small_lm.order - 1) + p)[-(small_lm.order - 1) :] for p in prefixes]
    symbols = rng.integers(1, small_lm.boundary + 1, 200)
    ours = tables.log_prob(tf.constant(contexts, tf.int64), tf.constant(symbols, tf.int64)).numpy()
    reference = [small_lm.log_prob(p, s) for p, s in zip(prefixes, symbols.tolist())]
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert len(set(np.round(reference, 4))) > 20  # varied enough to tell contexts apart


def test_order_too_high_for_the_keys_is_refused():
    with pytest.raises(ValueError, match="too high"):
        train_ngram([[1]], n_units=2000, order=7)
    with pytest.raises(ValueError, match="outside"):
        train_ngram([[0, 1]], n_units=3, order=2)


def random_log_probs(seed, batch=12, frames=25, n_classes=6):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (batch, frames, n_classes)).astype(np.float32)
    lengths = rng.integers(4, frames + 1, batch).astype(np.int32)
    for b, n in enumerate(lengths):  # frames past a line's length are blank, as the network makes them
        logits[b, n:] = 0.0
        logits[b, n:, 0] = 1e4
    return logits, lengths


def test_without_the_language_model_it_finds_what_ctc_beam_search_finds(small_lm):
    logits, lengths = random_log_probs(2)
    log_probs = tf.nn.log_softmax(logits).numpy()
    codes, scores = lm_beam_search(log_probs, lengths, NgramTables(small_lm), 0.0, 0.0, beam_width=16, top_paths=2)
    theirs, _ = beam_search_decode(logits, beam_width=16, top_paths=2)
    assert codes.shape[:2] == (2, 12)
    for b in range(12):
        assert [c for c in codes[0, b].numpy() if c >= 0] == [c for c in theirs[0, b].numpy() if c >= 0]
    assert (scores.numpy()[:, 0] >= scores.numpy()[:, 1]).all()


def test_the_language_model_decides_between_close_readings():
    # Lines are "1 2 3" over and over: after "1 2" comes 3, never 2.
    lm = train_ngram([[1, 2, 3]] * 50, n_units=3, order=3)
    frame = {0: [0.97, 0.01, 0.01, 0.01], 1: [0.01, 0.97, 0.01, 0.01], 2: [0.01, 0.01, 0.97, 0.01]}
    ambiguous = [0.02, 0.01, 0.52, 0.45]  # the network leans to a second 2
    probs = np.array([[frame[1], frame[0], frame[2], frame[0], ambiguous, frame[0]]], np.float32)
    log_probs, lengths = np.log(probs), np.array([6], np.int32)
    tables = NgramTables(lm)

    def read(weight):
        codes, _ = lm_beam_search(log_probs, lengths, tables, weight, 0.0, beam_width=4)
        return [c for c in codes[0, 0].numpy() if c >= 0]

    assert read(0.0) == [1, 2, 2]
    assert read(1.0) == [1, 2, 3]


def test_an_export_reads_with_its_language_model_and_no_file_beside_it(trained, tmp_path):
    params, result = trained
    lm, _ = build_lm(params, order=3)
    path = export_with_lm(result.export_path, tmp_path / "with-lm", lm, lm_weight=2.0, length_bonus=0.5)
    assert load_lm(path).ngram_keys.tolist() == lm.ngram_keys.tolist()
    assert json.loads((path / "tf_crnn.json").read_text())["lm_weight"] == 2.0
    model = PredictionModel(path)
    rows = list(read_csv_rows(params.csv_files_eval))[:16]
    images = [str(resolve_image_path(params.csv_files_eval, p)) for _, p, _ in rows]
    log_probs, lengths = model.log_probs(images)
    codes, _ = lm_beam_search(log_probs, lengths, NgramTables(lm), 2.0, 0.5, beam_width=params.lm_beam_width)
    expected = [model.alphabet.decode(c for c in row if c > 0) for row in codes[0].numpy()]
    assert model.predict(images) == expected
    # tf-crnn predict decodes here when asked for details: the same language model, the same texts.
    detailed, _ = predict_files(path, images, details=True)
    assert [r["transcription"] for r in detailed] == expected
    assert all(len(r["character_confidences"]) == len(r["transcription"]) for r in detailed)
    # Weight 2 on a model of random digits changes readings: the check above can fail.
    assert expected != PredictionModel(result.export_path).predict(images)
    # The SavedModel alone, in a process that never imports tf_crnn.
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(path / "saved_model.pb", bare)
    shutil.copytree(path / "variables", bare / "variables")
    code = (
        "import sys, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "out = m.signatures['filename'](filenames=tf.constant(sys.argv[2:]))\n"
        "print('\\n'.join(t.decode() for t in out['transcriptions'].numpy()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(bare), *images], capture_output=True, text=True, check=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.stdout.split("\n")[: len(images)] == expected


def test_tune_lm_prints_every_setting_and_writes_only_what_beats_greedy(trained, tmp_path):
    params, result = trained
    out = tmp_path / "tuned"
    run = CliRunner().invoke(
        main,
        ["tune-lm", str(result.export_path), params.csv_files_eval, "--lm-order", "3", "-o", str(out)],
    )
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert lines[0].startswith("Language model: 3-gram over 10 units")
    assert any(line.split()[0] == "greedy" for line in lines)
    assert sum(1 for line in lines if line.split()[0] in {"0.1", "0.2", "0.3", "0.5", "0.7", "1"}) == 24
    if out.exists():
        assert "Wrote" in lines[-1] and (out / "saved_model.pb").is_file()
    else:
        assert lines[-1].startswith("Greedy decoding is as good")
    again = CliRunner().invoke(main, ["evaluate", str(result.export_path), params.csv_files_eval, "--lm-order", "3"])
    assert again.exit_code == 2 and "go with --tune-lm" in again.output
    # The old spelling still tunes, and says what the command is now.
    old = CliRunner().invoke(
        main, ["evaluate", "builtin:printed-latin", params.csv_files_eval, "--tune-lm", "--lm-order", "3"]
    )
    assert old.exit_code == 2 and "is now 'tf-crnn tune-lm MODEL DATA'" in old.output
    assert "shipped model and is never changed" in old.output


def test_tune_lm_chooses_the_cer_that_evaluate_reads_on_the_export_it_writes(trained, tmp_path):
    """One decoder (``decoding.decode``): what ``tune-lm`` measures for a setting is what the
    export written with that setting reads, greedy included."""
    from tf_crnn.trust.evaluation import evaluate, tune_lm

    params, result = trained
    lm, _ = build_lm(params, order=3)
    tuning = tune_lm(result.export_path, params.csv_files_eval, lm, weights=(2.0,), bonuses=(0.5,))
    assert tuning.greedy.cer == evaluate(result.export_path, params.csv_files_eval).cer
    for weight, bonus, measured in tuning.trials:
        path = export_with_lm(result.export_path, tmp_path / f"w{weight}-b{bonus}", lm, weight, bonus)
        read = evaluate(path, params.csv_files_eval)
        assert {r.path: r.prediction for r in read.lines} == {r.path: r.prediction for r in measured.lines}
        assert read.cer == measured.cer, (weight, bonus)
        assert read.greedy.cer == tuning.greedy.cer  # evaluate gives the greedy figure beside it
    # Weight 2 on random digits reads differently from greedy: the comparisons above can fail.
    assert any(t[2].cer != tuning.greedy.cer for t in tuning.trials)


def test_text_is_split_into_the_alphabets_units_longest_first(lookup_file, tmp_path):
    from tf_crnn.config import Params
    from tf_crnn.network.language_model import sequences_from_text

    params = Params(lookup_alphabet_file=str(lookup_file({"a": 1, "c": 2, "ch": 3, " ": 4})))
    text = tmp_path / "corpus.txt"
    text.write_text("chac a\nxyz\n\ncha\n", encoding="utf-8")
    assert sequences_from_text(text, params) == [[3, 1, 2, 4, 1], [3, 1]]
    lm, source = build_lm(params, lm_text=text, order=2)
    assert source == str(text) and lm.n_units == 4 and lm.order == 2


def test_a_text_in_utf16_is_read_and_one_in_latin1_is_refused_naming_it(lookup_file, tmp_path):
    from tf_crnn.config import Params
    from tf_crnn.network.language_model import sequences_from_text

    params = Params(lookup_alphabet_file=str(lookup_file({"\u00e9": 1, "t": 2})))
    utf16, latin1 = tmp_path / "utf16.txt", tmp_path / "latin1.txt"
    utf16.write_text("\u00e9t\u00e9\n", encoding="utf-16")
    latin1.write_bytes("\u00e9t\u00e9\n".encode("latin-1"))
    assert sequences_from_text(utf16, params) == [[1, 2, 1]]
    with pytest.raises(ValueError, match=r"latin1\.txt: not UTF-8 text .*iconv"):
        sequences_from_text(latin1, params)


def test_sure_blank_runs_are_read_as_one_frame_and_keep_repeated_units_apart():
    sure, unsure = [0.9999, 0.0001, 0.0], [0.5, 0.5, 0.0]
    a = [0.0001, 0.9999, 0.0]
    # "a", three sure blanks, "a", a blank the network doubts, two sure blanks; then padding.
    probs = np.array([[a, sure, sure, sure, a, unsure, sure, sure, sure, sure]], np.float32)
    log_probs, lengths = tf.constant(np.log(np.maximum(probs, 1e-30))), tf.constant([8])
    merged, kept = merge_blank_runs(log_probs, lengths, 0.999)
    assert kept.numpy().tolist() == [5]
    np.testing.assert_allclose(np.exp(merged.numpy()[0]), probs[0, [0, 1, 4, 5, 6]], rtol=1e-5, atol=1e-12)
    assert merge_blank_runs(log_probs, lengths, 1.0)[0].shape == log_probs.shape
    lm = train_ngram([[1, 1]] * 20, n_units=2, order=2)
    for skip in (1.0, 0.999):
        codes, _ = lm_beam_search(log_probs, lengths, NgramTables(lm), 0.5, 0.0, beam_width=4, blank_skip=skip)
        assert [c for c in codes[0, 0].numpy() if c >= 0] == [1, 1]  # the blank between keeps both


@pytest.mark.parametrize("seed", [3, 4])
def test_skipping_the_tables_and_sure_blanks_changes_no_reading(small_lm, seed, monkeypatch):
    logits, lengths = random_log_probs(seed, batch=16, frames=30)
    logits[:, ::3, 0] += 12.0  # every third frame a sure blank, as between a network's characters
    log_probs = tf.nn.log_softmax(logits).numpy()
    tables = NgramTables(small_lm)

    def read(blank_skip):
        return lm_beam_search(log_probs, lengths, tables, 0.8, 0.3, beam_width=6, top_paths=3, blank_skip=blank_skip)

    codes, scores = read(0.999)
    monkeypatch.setattr(language_model, "PRUNE_MARGIN", float("inf"))  # every extension looked up
    every_codes, every_scores = read(1.0)
    assert codes.numpy().tolist() == every_codes.numpy()[:, :, : codes.shape[2]].tolist()
    np.testing.assert_allclose(scores.numpy(), every_scores.numpy(), atol=1e-2)


def test_the_search_reads_as_it_did_when_it_carried_every_reading(small_lm):
    """Golden: readings and scores of the search as it was before back-pointers
    (tests/golden/lm_beam_search.json, written by that search on these inputs)."""
    golden = json.loads((Path(__file__).parent / "golden" / "lm_beam_search.json").read_text())
    tables = NgramTables(small_lm)
    for case in golden:
        rng = np.random.default_rng(case["seed"])
        logits = rng.normal(0, 3, size=(case["batch"], case["frames"], 6)).astype(np.float32)
        logits[:, ::3, 0] += 8.0
        lengths = rng.integers(1, case["frames"] + 1, size=case["batch"]).astype(np.int32)
        codes, scores = lm_beam_search(
            tf.nn.log_softmax(logits).numpy(), lengths, tables, case["lm_weight"], case["length_bonus"],
            beam_width=case["beam_width"], top_paths=case["top_paths"], blank_skip=case["blank_skip"],
        )  # fmt: skip
        assert codes.numpy().tolist() == case["codes"], case["seed"]
        np.testing.assert_allclose(scores.numpy(), case["scores"], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_the_search_without_tensorflow_reads_as_the_graphs_search(small_lm, seed):
    """``ngram.host_beam_search`` (numpy, for reading without TensorFlow) against
    ``lm_beam_search``: the same readings, in the same order, and the same scores."""
    logits, lengths = random_log_probs(seed, batch=16, frames=40)
    logits[:, ::3, 0] += 9.0
    logits[:, 1::7, 2] += 6.0  # repeated units, merged prefixes
    log_probs = tf.nn.log_softmax(logits).numpy()
    for lm, weight, bonus, skip in [(small_lm, 0.8, 0.3, 0.999), (small_lm, 0.3, 1.0, 1.0), (None, 0.0, 0.0, 0.999)]:
        args = dict(beam_width=6, top_paths=3, blank_skip=skip)
        codes, scores = lm_beam_search(log_probs, lengths, lm and NgramTables(lm), weight, bonus, **args)
        host_codes, host_scores = ngram.host_beam_search(
            log_probs, lengths, lm and ngram.SortedTables(lm), weight, bonus, **args
        )
        assert host_codes.tolist() == codes.numpy().tolist()
        np.testing.assert_allclose(host_scores, scores.numpy(), rtol=1e-6, atol=1e-4)
    assert len({tuple(c) for c in codes.numpy()[0].tolist()}) > 8  # the lines read differently


def test_the_sorted_tables_are_the_reference(small_lm):
    tables = ngram.SortedTables(small_lm)
    rng = np.random.default_rng(2)
    prefixes = [rng.integers(1, small_lm.boundary, rng.integers(0, 6)).tolist() for _ in range(200)]
    contexts = [([small_lm.boundary] * (small_lm.order - 1) + p)[-(small_lm.order - 1) :] for p in prefixes]
    symbols = rng.integers(1, small_lm.boundary + 1, 200)
    ours = tables.log_prob(np.array(contexts, np.int64), symbols.astype(np.int64))
    reference = [small_lm.log_prob(p, s) for p, s in zip(prefixes, symbols.tolist())]
    np.testing.assert_allclose(ours, reference, atol=1e-5)
