import csv

import pytest
from PIL import Image

from tf_crnn.config import Params
from tf_crnn.data.preprocessing import NoDataError, ctc_min_length, data_preprocessing, preprocess_csv
from tf_crnn.records import read_csv_rows


@pytest.fixture
def params(tmp_path, lookup_file):
    alphabet = lookup_file({c: i for i, c in enumerate("abcdefgh ", start=1)})
    return Params(
        input_shape=[32, 200],
        cnn_features_list=[4, 4],
        cnn_kernel_size=[3, 3],
        cnn_stride_size=[1, 1],
        cnn_pool_size=[2, 2],
        cnn_batch_norm=[False, False],
        rnn_units=[4],
        max_chars_per_string=10,
        lookup_alphabet_file=str(alphabet),
        output_model_dir=str(tmp_path / "out"),
    )


def image(path, width=120, height=32):
    Image.new("L", (width, height), 255).save(path)
    return path.name


def test_each_bad_row_is_dropped_with_its_reason(tmp_path, params):
    good = image(tmp_path / "good.png")
    image(tmp_path / "narrow.png", width=12)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    image(tmp_path / "flat.png", width=300, height=1)
    image(tmp_path / "long.png", width=50_000, height=32)
    rows = [
        f"{good};|a|b|",
        "missing.png;|a|",
        "empty.png;|a|",
        "text.png;|a|",
        "truncated.png;|a|",
        f"{good};",
        f"{good};|a|z|",
        f"{good};|a|b|c|d|e|f|g|h|a|b|c|",
        "narrow.png;|a|a|b|",  # 12 px / 4 = 3 steps; 'aab' needs 4
        f"{good}",
        f"{good};|a||b|",
        f"{good};|a|b|",
        "flat.png;|a|",
        "long.png;|a|b|",
    ]
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    dropped = []
    kept = preprocess_csv(csv_file, params, tmp_path / "clean.csv", dropped)
    assert kept == 1
    reasons = {d.row: d.reason for d in dropped}
    assert reasons[2] == "image file not found"
    assert reasons[3] == "image file is empty (0 bytes)"
    assert reasons[4] == "not an image file"
    assert reasons[5].startswith("image cannot be decoded")
    assert reasons[6] == "empty label"
    assert reasons[7] == "units not in the alphabet: 'z'"
    assert reasons[8].startswith("label has 11 units, more than max_chars_per_string=10")
    assert reasons[9] == "label needs 4 CTC steps but the 12x32 image gives 3"
    assert reasons[10].startswith("no ';' between image path and label")
    assert reasons[11].startswith("empty unit in label")
    assert reasons[12] == "duplicate of an earlier row"
    assert reasons[13] == "image is 300x1: too low to hold a line of text"
    assert reasons[14] == (
        "image is 50000x32: at height 32 it would be 50000 px wide, more than 2x input_shape[1]=200; "
        "crop it or raise input_shape[1]"
    )
    clean = list(read_csv_rows(tmp_path / "clean.csv"))
    assert clean == [(1, str(tmp_path / "good.png"), "|a|b|")]

    # For reading, the rows a model reads but training cannot learn from are kept and listed apart.
    dropped, unlearnable = [], []
    assert preprocess_csv(csv_file, params, tmp_path / "read.csv", dropped, unlearnable=unlearnable) == 3
    assert [(d.row, d.kind, d.reference) for d in unlearnable] == [
        (7, "units not in the alphabet", "az"),
        (9, "image too narrow for its label", "aab"),
    ]
    assert {d.row for d in dropped} == set(reasons) - {7, 9}
    assert [row[1:] for row in read_csv_rows(tmp_path / "read.csv")] == [
        (str(tmp_path / "good.png"), "|a|b|"),
        (str(tmp_path / "good.png"), "|a|z|"),
        (str(tmp_path / "narrow.png"), "|a|a|b|"),
    ]


def test_ctc_min_length_counts_repeats():
    assert ctc_min_length(list("abc")) == 3
    assert ctc_min_length(list("aab")) == 4
    assert ctc_min_length(list("aaa")) == 5


def test_bom_crlf_and_non_utf8_rows(tmp_path, params):
    good = image(tmp_path / "good.png")
    csv_file = tmp_path / "data.csv"
    csv_file.write_bytes(b"\xef\xbb\xbf" + f"{good};|a|\r\n".encode() + b"x\xff.png;|b|\r\n")
    dropped = []
    assert preprocess_csv(csv_file, params, tmp_path / "clean.csv", dropped) == 1
    assert dropped[0].reason == "row is not valid UTF-8"


def test_data_preprocessing_writes_report_and_refuses_empty_sets(tmp_path, params):
    good = image(tmp_path / "good.png")
    train = tmp_path / "train.csv"
    train.write_text(f"{good};|a|\nmissing.png;|a|\n")
    params.csv_files_train = str(train)
    train_csv, eval_csv, n_train, n_eval = data_preprocessing(params)
    assert (n_train, n_eval, eval_csv) == (1, 0, None)
    with open(tmp_path / "out" / "preprocessed" / "dropped_rows.csv") as f:
        report = list(csv.DictReader(f))
    assert report == [
        {"csv_file": str(train), "row": "2", "path": "missing.png", "kind": "unreadable image",
         "reason": "image file not found"}
    ]  # fmt: skip

    train.write_text("missing.png;|a|\n")
    with pytest.raises(NoDataError, match="no usable training rows"):
        data_preprocessing(params)


def test_labels_and_alphabet_are_normalised_alike(tmp_path, lookup_file):
    decomposed, composed = "e\u0301", "\u00e9"
    alphabet = lookup_file({decomposed: 1, "a": 2})  # a lookup written in NFD
    Image.new("L", (120, 32), 255).save(tmp_path / "x.png")
    (tmp_path / "d.csv").write_text(f"x.png;|a|{composed}|\ny.png;|{decomposed}|\n", encoding="utf-8")
    common = dict(
        input_shape=[32, 200], cnn_features_list=[4], cnn_kernel_size=[3], cnn_stride_size=[1], cnn_pool_size=[2],
        cnn_batch_norm=[False], rnn_units=[4], lookup_alphabet_file=str(alphabet),
    )  # fmt: skip
    nfc = Params(**common)
    assert nfc.alphabet.encode(["a", composed]) == [2, 1]
    dropped = []
    assert preprocess_csv(tmp_path / "d.csv", nfc, tmp_path / "clean.csv", dropped) == 1
    assert [label for *_, label in read_csv_rows(tmp_path / "clean.csv")] == [f"|a|{composed}|"]
    raw = Params(**common, unicode_normalization="none")
    dropped = []
    assert preprocess_csv(tmp_path / "d.csv", raw, tmp_path / "clean2.csv", dropped) == 0
    assert dropped[0].reason == f"units not in the alphabet: {composed!r}"
    clash = lookup_file({decomposed: 1, composed: 2}, name="clash.json")
    with pytest.raises(ValueError, match="become 'é' after NFC normalisation"):
        Params(**dict(common, lookup_alphabet_file=str(clash))).alphabet  # noqa: B018
