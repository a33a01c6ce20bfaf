import json

import pytest

from tf_crnn.alphabet import BLANK_INDEX, Alphabet
from tf_crnn.records import join_units, read_csv_rows, split_label


def test_blank_is_class_zero_and_codes_are_classes(lookup_file):
    alphabet = Alphabet(lookup_file({"a": 1, "b": 2, "c": 3}))
    assert BLANK_INDEX == 0
    assert alphabet.n_classes == 4
    assert alphabet.encode(["c", "a"]) == [3, 1]
    assert alphabet.decode([3, 0, 1]) == "ca"


def test_multi_character_units_round_trip(lookup_file):
    alphabet = Alphabet(lookup_file({"a": 1, "special_char": 2, "ß": 3, " ": 4}))
    units = split_label("|a|special_char| |ß|")
    assert units == ["a", "special_char", " ", "ß"]
    codes = alphabet.encode(units)
    assert codes == [1, 2, 4, 3]
    assert alphabet.decode(codes) == "aspecial_char ß"
    assert join_units(units) == "|a|special_char| |ß|"


def test_real_dollar_is_a_character_not_the_blank(lookup_file):
    # '$' with a code that is not the largest: an ordinary unit, as in ../shared/data/lines.
    alphabet = Alphabet(lookup_file({"$": 1, "a": 2, "b": 3}))
    assert "$" in alphabet.alphabet_units
    assert alphabet.encode(["$", "a"]) == [1, 2]
    assert alphabet.decode([1]) == "$"


def test_legacy_lookup_with_blank_symbol_last_loads(lookup_file):
    # Lookups of the original tf_crnn put the blank '$' last.
    alphabet = Alphabet(lookup_file({"a": 1, "b": 2, "$": 3}))
    assert alphabet.alphabet_units == ["a", "b"]
    assert alphabet.n_classes == 3


def test_custom_blank_symbol(lookup_file):
    alphabet = Alphabet(lookup_file({"a": 1, "$": 2, "<b>": 3}), blank_symbol="<b>")
    assert alphabet.alphabet_units == ["a", "$"]


@pytest.mark.parametrize(
    "lookup, message",
    [
        ({"a": 1, "b": 1}, "share the code 1"),
        ({"a": 0}, "codes must be >= 1"),
        ({"a": "1"}, "must be an integer"),
        ({"a": 1.5}, "must be an integer"),
        ({}, "is empty"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_lookups_are_clear_errors(lookup_file, lookup, message):
    with pytest.raises(ValueError, match=message):
        Alphabet(lookup_file(lookup))


def test_lookup_that_is_not_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{a: 1")
    with pytest.raises(ValueError, match="not valid JSON"):
        Alphabet(path)


def test_split_label_keeps_empty_units_for_rejection():
    assert split_label("|a||b|") == ["a", "", "b"]
    assert split_label("") == []
    assert split_label("|") == []
    assert split_label("a|b", "|") == ["a", "b"]


def test_read_csv_rows_handles_bom_crlf_and_label_delimiters(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("\ufeffa.png;|x|\r\nb.png;|;|y|\r\n\r\nno_delimiter\r\n".encode())
    rows = list(read_csv_rows(path))
    assert rows == [(1, "a.png", "|x|"), (2, "b.png", "|;|y|"), (4, "no_delimiter", None)]


def test_create_lookup_from_labels_and_check(tmp_path):
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("a.png;|b|a|\nb.png;|c|ch|\n")
    out = tmp_path / "lookup.json"
    lookup = Alphabet.create_lookup_from_labels([csv_file], out)
    assert lookup == {"a": 1, "b": 2, "c": 3, "ch": 4}
    assert json.loads(out.read_text()) == lookup

    extended = Alphabet.create_lookup_from_labels([csv_file], tmp_path / "l2.json", original_lookup_filename=out)
    assert extended == lookup

    small = tmp_path / "small.json"
    small.write_text(json.dumps({"a": 1, "b": 2}))
    missing = Alphabet(small).check_input_file_alphabet([csv_file])
    assert set(missing) == {"c", "ch"}
    assert missing["c"].count == 1
    assert missing["c"].examples == [f"{csv_file}:2"]


def test_make_and_map_lookup():
    assert Alphabet.make_json_lookup_alphabet("abca") == {"a": 1, "b": 2, "c": 3}
    assert Alphabet.map_lookup({"x": 10, "y": 4}) == {"y": 1, "x": 2}


def test_alphabet_check_normalises_labels_as_training_does(tmp_path):
    from click.testing import CliRunner

    from tf_crnn.cli import main

    lookup = tmp_path / "lookup.json"
    lookup.write_text(json.dumps({"\u00e9": 1, "t": 2}), encoding="utf-8")
    data = tmp_path / "data.csv"
    data.write_text("a.png;|e\u0301|t|\n", encoding="utf-8")  # é decomposed
    run = CliRunner().invoke(main, ["alphabet", "check", str(lookup), str(data)])
    assert run.exit_code == 0, run.output  # NFC, the default, composes it
    run = CliRunner().invoke(main, ["alphabet", "check", str(lookup), str(data), "--normalization", "none"])
    assert run.exit_code == 1 and "1 units missing" in run.output
