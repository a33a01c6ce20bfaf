"""Base-model corpora: reserved fonts refused, reproducible sharded rendering, held-out fonts and
texts in validation, and the architecture a fine-tuning config takes from its base model."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from PIL import Image

from tf_crnn.cli import main
from tf_crnn.config import ARCHITECTURE_KEYS, Params, inherit_architecture
from tf_crnn.data.fonts import RESERVED, font_family, is_reserved, usable_fonts
from tf_crnn.datasets.corpus import (
    build_corpus,
    holdout_families,
    read_text_lines,
    render_handwritten_line,
    render_scan_line,
)

CHARS = "abcdefghijklmnopqrstuvwxyz.,'"


def make_font(path: Path, family: str, chars: str = CHARS) -> Path:
    """A TrueType font of boxes whose shape depends on the character (so lines differ)."""
    names = [".notdef", "space"] + [f"g{ord(c)}" for c in chars]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({32: "space", **{ord(c): f"g{ord(c)}" for c in chars}})
    glyphs, metrics = {}, {}
    for name in names:
        pen = TTGlyphPen(None)
        if name not in (".notdef", "space"):
            code = int(name[1:])
            top = 400 + (code * 37) % 400
            pen.moveTo((60, 0)), pen.lineTo((60, top)), pen.lineTo((120 + code % 5 * 60, top))
            pen.lineTo((120 + code % 5 * 60, 0)), pen.closePath()
        glyphs[name] = pen.glyph()
        metrics[name] = (500, 60)
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics(metrics)
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": family, "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    builder.save(str(path))
    return path


@pytest.fixture(scope="module")
def fonts(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fonts")
    for i in range(12):
        make_font(folder / f"font{i}.ttf", f"Test Family {i}")
    return folder


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    rng = random.Random(1)
    path = tmp_path_factory.mktemp("texts") / "lines.txt"
    lines = [
        " ".join("".join(rng.choice(CHARS[:26]) for _ in range(rng.randint(2, 7))) for _ in range(3))
        for _ in range(200)
    ]
    path.write_text("\n".join(lines + ["ÉLAN refused: a capital outside the alphabet"]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def alphabet(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("alphabet") / "alphabet.json"
    path.write_text(json.dumps({c: i for i, c in enumerate(" " + CHARS, start=1)}), encoding="utf-8")
    return path


@pytest.mark.parametrize("family", RESERVED)
def test_every_reserved_family_is_refused_however_spelled(family):
    assert is_reserved(family)
    assert is_reserved(family.upper().replace(" ", "-"))
    assert is_reserved(f"fonts-{family.lower().replace(' ', '')}")


@pytest.mark.parametrize("family", ["Liberation Serif", "Caveat", "EB Garamond", "Noto Sans", "Homemade Apple"])
def test_other_families_are_usable(family):
    assert not is_reserved(family)


@pytest.mark.parametrize("family", ["Dancing Script", "Nimbus Roman", "TeX Gyre Termes", "Klee One"])
def test_a_reserved_font_file_is_refused_by_its_own_name_table(tmp_path, family):
    # The file's name says nothing: the family inside it is what counts.
    font = make_font(tmp_path / "innocent.ttf", family)
    assert font_family(font) == family
    with pytest.raises(ValueError, match="reserved"):
        usable_fonts([tmp_path])
    result = CliRunner().invoke(main, ["synth", str(tmp_path / "out"), "--font", str(font), "--n-train", "2"])
    assert result.exit_code != 0
    assert "reserved" in result.output and "innocent.ttf" in result.output
    assert not (tmp_path / "out").exists()


def test_renderers_draw_ink_on_paper(fonts):
    rng = random.Random(0)
    for _ in range(10):
        for image in (
            render_scan_line("abc def", str(fonts / "font0.ttf"), rng, ["ghi", "jkl"]),
            render_handwritten_line("abc def", str(fonts / "font1.ttf"), rng),
        ):
            assert image.mode == "L" and image.width > image.height > 5
            low, high = image.getextrema()
            assert high - low > 60


def test_text_lines_are_cut_and_filtered(texts):
    lines = list(read_text_lines(texts, set(" " + CHARS), max_chars=12))
    assert lines and all(3 <= len(line) <= 12 for line in lines)
    assert not any("É" in line for line in lines)


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "manifest.json":
            digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def test_corpus_is_reproducible_sharded_and_validation_is_held_out(tmp_path, fonts, texts, alphabet):
    one = build_corpus(tmp_path / "one", [texts], [fonts], 60, style="scan", seed=3, val_share=0.2, holdout=0.25,
                       alphabet=alphabet, workers=1)  # fmt: skip
    build_corpus(tmp_path / "two", [texts], [fonts], 60, style="scan", seed=3, val_share=0.2, holdout=0.25,
                 alphabet=alphabet, workers=2)  # fmt: skip
    assert _tree_digest(tmp_path / "one") == _tree_digest(tmp_path / "two")
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert manifest["written"] == {"train": 48, "val": 12}
    assert manifest["texts"][0]["lines"] == 200  # the line with É left out
    held = {f["family"] for f in manifest["fonts"] if f["split"] == "val"}
    assert held == holdout_families([f"Test Family {i}" for i in range(12)], 0.25, 3) and held
    fonts_of = dict(line.strip().split(";") for line in (tmp_path / "one" / "fonts.csv").open())
    rows = {split: [line.split(";") for line in one[split].read_text().splitlines()] for split in ("train", "val")}
    assert {fonts_of[name] for name, _ in rows["val"]} <= held
    assert not {fonts_of[name] for name, _ in rows["train"]} & held
    train_texts = {label for _, label in rows["train"]}
    assert not train_texts & {label for _, label in rows["val"]}
    for name, _ in rows["train"][:5]:
        assert name.startswith("images/0000/") and Image.open(tmp_path / "one" / name).mode == "L"
    assert json.loads(one["alphabet"].read_text()) == json.loads(alphabet.read_text())


def test_a_different_seed_gives_a_different_corpus(tmp_path, fonts, texts):
    build_corpus(tmp_path / "a", [texts], [fonts], 10, style="handwriting", seed=1, workers=1)
    build_corpus(tmp_path / "b", [texts], [fonts], 10, style="handwriting", seed=2, workers=1)
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "b")


def test_synth_style_writes_a_corpus_and_refuses_a_used_folder(tmp_path, fonts, texts, alphabet):
    out = tmp_path / "corpus"
    args = ["synth", str(out), "--style", "handwriting", "--font", str(fonts), "--texts", str(texts),
            "--alphabet", str(alphabet), "--n-train", "8", "--n-eval", "2", "--workers", "1"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert len((out / "train.csv").read_text().splitlines()) == 8
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "not empty" in again.output


def _base_model(folder: Path, **network) -> Path:
    folder.mkdir()
    config = Params(lookup_alphabet_file=None).to_dict() | network
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.weights.h5").write_bytes(b"")
    return folder


def test_init_from_gives_the_network_the_config_does_not_set(tmp_path):
    base = _base_model(
        tmp_path / "base", input_shape=[48, 1600], rnn_units=[192, 192], cnn_features_list=[8, 16], lm_weight=0.7
    )
    inherited = inherit_architecture({"init_from": str(base), "n_epochs": 3})
    assert inherited["input_shape"] == [48, 1600] and inherited["rnn_units"] == [192, 192]
    assert set(ARCHITECTURE_KEYS) <= set(inherited)
    # What the user sets is kept (training checks it against the weights).
    kept = inherit_architecture({"init_from": str(base), "rnn_units": [64, 64]})
    assert kept["rnn_units"] == [64, 64] and kept["cnn_features_list"] == [8, 16]
    # A run resumed takes what it started with (here another network, and a language model's
    # weight), never the model's again; one with nothing saved yet starts from the model.
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(Params(rnn_units=[96], lm_weight=0.4).to_dict()))
    resumed = Params.from_dict({"init_from": str(base), "restore_model": True, "output_model_dir": str(run)})
    assert resumed.rnn_units == [96] and resumed.lm_weight == 0.4
    started = inherit_architecture(
        {"init_from": str(base), "restore_model": True, "output_model_dir": str(run.parent / "new")}
    )
    assert started["rnn_units"] == [192, 192] and started["lm_weight"] == 0.7
    assert inherit_architecture({"init_from": str(tmp_path / "missing")}) == {"init_from": str(tmp_path / "missing")}


def test_presets_fit_the_base_models():
    from tf_crnn.artifacts import MODELS_DIR
    from tf_crnn.datasets.importers import load_preset

    for preset, model in (("printed", "printed-latin"), ("handwriting", "handwriting-fr")):
        shipped = json.loads((MODELS_DIR / model / "config.json").read_text())
        keys = [key for key in ARCHITECTURE_KEYS if key in load_preset(preset)]
        settings = Params.from_dict({key: load_preset(preset)[key] for key in keys}).to_dict()
        network = Params.from_dict({key: shipped[key] for key in keys}).to_dict()
        for key in keys:
            if key != "input_shape":
                assert settings[key] == network[key], (preset, key)
        assert settings["input_shape"][0] == network["input_shape"][0]
