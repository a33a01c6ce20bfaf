"""Property-based tests: whatever bytes or values come in, the readers and the config parser
give a result or the project's one-line error (``TfCrnnError``), never another exception."""

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf_crnn.config import Params
from tf_crnn.data.documents import read_document
from tf_crnn.errors import ConfigError, DocumentError
from tf_crnn.records import read_csv_rows

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"

attribute = st.one_of(
    st.sampled_from(["10", "-5", "0", "1e999", "nan", "inf", "-inf", "abc", "", " 12 ", "3.5", "1,2", "1e7", "9" * 40]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
)
points = st.one_of(
    st.lists(st.tuples(attribute, attribute), max_size=5).map(lambda ps: " ".join(f"{x},{y}" for x, y in ps)),
    attribute,
)


def _xml_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def _write(data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp())
    path = folder / "doc.xml"
    path.write_bytes(data)
    return path


def _read(data: bytes) -> None:
    try:
        document = read_document(_write(data))
    except DocumentError:
        return
    for line in document.lines:  # every line has usable geometry or says why not
        assert line.error is not None or line.box is None or all(abs(v) <= 2e7 for v in line.box)  # x + width


@SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_as_a_document(data):
    _read(data)


@SETTINGS
@given(
    hpos=attribute, vpos=attribute, width=attribute, height=attribute, polygon=points, baseline=points,
    file_name=st.text(max_size=40), encoding=st.sampled_from(["utf-8", "utf-16"]), doctype=st.booleans(),
)  # fmt: skip
def test_alto_with_any_attribute_values(hpos, vpos, width, height, polygon, baseline, file_name, encoding, doctype):
    values = {k: _xml_escape(v) for k, v in dict(h=hpos, v=vpos, w=width, t=height, p=polygon, b=baseline).items()}
    name = _xml_escape("".join(c for c in file_name if c.isprintable()))
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>'
        + ('<!DOCTYPE alto [<!ENTITY x "y">]>' if doctype else "")
        + f'<alto xmlns="{ALTO_NS}"><Description><sourceImageInformation><fileName>{name}</fileName>'
        f"</sourceImageInformation></Description><Layout><Page><PrintSpace><TextBlock>"
        f'<TextLine ID="l1" HPOS="{values["h"]}" VPOS="{values["v"]}" WIDTH="{values["w"]}" HEIGHT="{values["t"]}" '
        f'BASELINE="{values["b"]}"><Shape><Polygon POINTS="{values["p"]}"/></Shape><String CONTENT="a"/></TextLine>'
        "</TextBlock></PrintSpace></Page></Layout></alto>"
    )
    _read(text.encode(encoding))


@SETTINGS
@given(coords=points, baseline=points, image=st.text(max_size=40))
def test_page_with_any_coordinates(coords, baseline, image):
    name = _xml_escape("".join(c for c in image if c.isprintable()))
    text = (
        f'<PcGts xmlns="{PAGE_NS}"><Page imageFilename="{name}"><TextRegion id="r">'
        f'<TextLine id="l"><Coords points="{_xml_escape(coords)}"/><Baseline points="{_xml_escape(baseline)}"/>'
        "<TextEquiv><Unicode>a</Unicode></TextEquiv></TextLine></TextRegion></Page></PcGts>"
    )
    _read(text.encode())


@SETTINGS
@given(st.binary(max_size=300), st.sampled_from([";", ",", "\t", "|"]))
def test_any_bytes_as_a_data_csv(data, delimiter):
    rows = list(read_csv_rows(_write(data), delimiter))
    assert all(
        isinstance(n, int) and isinstance(p, str) and (lab is None or isinstance(lab, str)) for n, p, lab in rows
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from([f.name for f in __import__("dataclasses").fields(Params)] + ["unknown_key", "rnn_unit"])


@SETTINGS
@given(st.dictionaries(keys, json_values, max_size=4))
def test_any_config_values(config):
    try:
        params = Params.from_dict(json.loads(json.dumps(config)))
    except ConfigError:
        return
    assert isinstance(params.to_dict(), dict)
