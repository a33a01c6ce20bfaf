"""tf-crnn audit and tf-crnn select, run as a user runs them, on the tiny digits model."""

from __future__ import annotations

import csv
import dataclasses
import random
import shutil
from pathlib import Path

from click.testing import CliRunner
from lxml import etree
from test_documents import ALTO_NS, alto_xml, draw_page

from tf_crnn.cli import main
from tf_crnn.readings import Reading
from tf_crnn.records import join_units, read_csv_rows, resolve_image_path, split_label, write_csv_rows
from tf_crnn.trust.audit import Candidate, select_lines


def _rows(csv_file: Path) -> list[tuple[str, str]]:
    return [(path, "".join(split_label(label))) for _, path, label in read_csv_rows(csv_file)]


def test_audit_ranks_wrong_transcriptions_first(trained, digits_data, tmp_path):
    _, result = trained
    rows = _rows(digits_data["eval"])[:60]
    rng = random.Random(3)
    wrong = set(rng.sample(range(len(rows)), 6))
    corrupted = []
    for i, (path, text) in enumerate(rows):
        if i in wrong:  # another line's digits, or the line's own reversed and lengthened
            text = rows[(i + 7) % len(rows)][1] + "7" if i % 2 else text[::-1] + "00"
        corrupted.append((resolve_image_path(digits_data["eval"], path), join_units(text)))
    data = tmp_path / "data.csv"
    write_csv_rows(data, corrupted)
    out = tmp_path / "audit"
    run = CliRunner().invoke(main, ["audit", str(result.export_path), str(data), "-o", str(out), "--show", "10"])
    assert run.exit_code == 0, run.output
    with open(out / "audit.csv", newline="") as f:
        ranked = list(csv.DictReader(f))
    assert len(ranked) == len(rows)
    top = {row["path"] for row in ranked[:8]}
    assert sum(corrupted[i][0] in top for i in wrong) >= 5
    suspicions = [float(row["suspicion"]) for row in ranked]
    assert suspicions == sorted(suspicions, reverse=True)
    page = (out / "audit.html").read_text()
    assert page.count("<img src='images/") == 10 and "<del>" in page and (out / "images").is_dir()


def test_select_spreads_over_different_lines():
    hard = [Candidate(f"hard{i}", Path("x.png"), Reading("3141", 0.2), 3.0) for i in range(5)]
    others = [Candidate(f"o{i}", Path("x.png"), Reading(str(10**i + 7), 0.5), 2.0 - i / 10) for i in range(6)]
    picked = [c.source for c in select_lines(hard + others, 4, diversity=1.0)]
    assert sum(s.startswith("hard") for s in picked) == 1
    greedy = [c.source for c in select_lines(hard + others, 4, diversity=0.0)]
    assert all(s.startswith("hard") for s in greedy)


def test_select_spreads_over_writers():
    # The hardest hand's lines share no text, only their writer.
    hand = [
        Candidate(f"hand{i}", Path("x.png"), Reading(t, 0.2), 3.0, group="will_1")
        for i, t in enumerate(["ab", "cd", "ef"])
    ]
    others = [
        Candidate(f"o{i}", Path("x.png"), Reading(t, 0.5), 2.0, group=f"will_{i + 2}")
        for i, t in enumerate(["gh", "ij"])
    ]
    picked = [c.source for c in select_lines(hand + others, 3, diversity=1.0)]
    assert picked == ["hand0", "o0", "o1"]
    assert [c.source for c in select_lines(hand + others, 3, diversity=0.0)] == ["hand0", "hand1", "hand2"]
    # Lines of one group only (a CSV's images in one folder): the order of uncertainty alone.
    alone = [dataclasses.replace(c, group="") for c in hand + others]
    assert [c.source for c in select_lines(alone, 3, diversity=1.0)] == ["hand0", "hand1", "hand2"]
    # A day's work in characters: lines until their readings hold that many (two characters each).
    assert [c.source for c in select_lines(hand + others, None, characters=5)] == ["hand0", "o0", "o1"]
    assert len(select_lines(hand + others, None, characters=4)) == 2


def test_select_writes_lines_to_transcribe_that_import_reads(trained, digits_data, tmp_path):
    _, result = trained
    pool = tmp_path / "pool"
    shutil.copytree(Path(digits_data["eval"]).parent / "images", pool)
    out = tmp_path / "next"
    run = CliRunner().invoke(main, ["select", str(result.export_path), str(pool), "-n", "5", "-o", str(out)])
    assert run.exit_code == 0, run.output
    readings = sorted(out.glob("*.pred.txt"))
    assert len(readings) == 5 and len(list(out.glob("*.png"))) == 5
    for reading in readings:  # the transcriber corrects each reading into its .gt.txt
        reading.with_name(reading.name.replace(".pred.txt", ".gt.txt")).write_text(reading.read_text())
    run = CliRunner().invoke(main, ["import", "folder", str(out), "-o", str(tmp_path / "data"), "--split", "1,0,0"])
    assert run.exit_code == 0, run.output
    again = CliRunner().invoke(main, ["select", str(result.export_path), str(pool), "-n", "5", "-o", str(out)])
    assert again.exit_code != 0 and "not empty" in again.output
    budget = tmp_path / "budget"
    run = CliRunner().invoke(
        main, ["select", str(result.export_path), str(pool), "--characters", "20", "-o", str(budget)]
    )
    assert run.exit_code == 0, run.output
    held = [len(row["model_reading"]) for row in csv.DictReader((budget / "selection.csv").open())]
    assert sum(held) >= 20 > sum(held[:-1]) and f"{sum(held)} characters as read" in run.output
    both = CliRunner().invoke(
        main, ["select", str(result.export_path), str(pool), "-n", "2", "--characters", "9", "-o", str(tmp_path / "x")]
    )
    assert both.exit_code == 2 and "not both" in both.output


def test_select_pages_writes_documents_with_their_text_emptied(trained, tmp_path):
    _, result = trained
    pages = tmp_path / "pages"
    pages.mkdir()
    for i in range(3):
        truth = draw_page(pages / f"p{i}.png")
        (pages / f"p{i}.xml").write_text(alto_xml(f"p{i}.png", truth), encoding="utf-8")
    out = tmp_path / "todo"
    run = CliRunner().invoke(
        main, ["select", str(result.export_path), str(pages), "-n", "2", "--pages", "-o", str(out)]
    )
    assert run.exit_code == 0, run.output
    written = sorted(out.glob("*.xml"))
    assert len(written) == 2 and len(list(out.glob("*.png"))) == 2
    for xml_file in written:
        strings = etree.parse(str(xml_file)).getroot().iter(f"{{{ALTO_NS}}}String")
        assert all(s.get("CONTENT") == "" for s in strings)
