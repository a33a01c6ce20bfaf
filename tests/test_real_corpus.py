"""The base models' corpus recipe (benchmarks/builtin/real_corpus.py) on a collection of its own:
a git snapshot read blob by blob, a page whose image the snapshot lacks, the transcription guide."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from test_documents import alto_xml, draw_page

from tf_crnn.records import read_csv_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "builtin"))
import real_corpus  # noqa: E402


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def snapshot(tmp_path):
    """A bare snapshot of a collection of three documents; one page's image blob is gone."""
    work = tmp_path / "work"
    for n, document in enumerate(("reg-a", "reg-b", "reg-c")):
        folder = work / "data" / document
        folder.mkdir(parents=True)
        truth = draw_page(folder / "p1.png")
        with Image.open(folder / "p1.png") as page:  # three pages, three images
            page.putpixel((n, 0), 0)
            page.save(folder / "p1.png")
        truth["l1"]["text"] = "40217"
        truth["l2"]["text"] = "9'83"  # the straight apostrophe, which the guide writes ’
        truth["l3"]["text"] = "XXX 61"  # a word not read: the line is left out
        (folder / "p1.xml").write_text(alto_xml("p1.png", truth), encoding="utf-8")
    _git("init", "-q", cwd=work)
    _git("add", ".", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pages", cwd=work)
    collections = tmp_path / "collections"
    _git("clone", "-q", "--bare", str(work), str(collections / "owner+pages" / "repo"), cwd=tmp_path)
    lost = subprocess.run(
        ["git", "rev-parse", "HEAD:data/reg-c/p1.png"], cwd=work, capture_output=True, text=True, check=True
    ).stdout.strip()
    objects = collections / "owner+pages" / "repo" / "objects"
    loose = objects / lost[:2] / lost[2:]
    if not loose.exists():  # packed by the clone: unpack, then drop the one blob
        for pack in (objects / "pack").glob("*.pack"):
            data = pack.read_bytes()
            pack.unlink()
            pack.with_suffix(".idx").unlink()
            subprocess.run(["git", "--git-dir", str(collections / "owner+pages" / "repo"), "unpack-objects", "-q"],
                           input=data, check=True)  # fmt: skip
    loose.unlink()
    return collections


def test_the_recipe_reads_a_snapshot_leaves_out_what_it_cannot_and_follows_the_guide(snapshot, tmp_path):
    collection = real_corpus.Collection(
        "owner/pages", "handwriting-fr", "0" * 40, "alto", r"^data/", r"^data/([^/]+)/", "CC BY 4.0", "Tests",
        leave_out="XXX",
    )  # fmt: skip
    args = type("Args", (), {"head": False, "seed": 0})()
    alphabet = set("0123456789’ ")
    row, name = real_corpus.build_collection(collection, snapshot, tmp_path / "out", alphabet, args)

    assert row["files_missing"] == 1 and "1 x page image missing from the snapshot" in row["left_out"]
    assert "2 x markup of unread or struck-out text" in row["left_out"]
    assert row["train_lines"] + row["val_lines"] == 4 and row["val_documents"] == 1 and row["train_documents"] == 1
    texts = {
        "".join(label.split("|")) for split in ("train", "val")
        for _, _, label in read_csv_rows(tmp_path / "out" / name / f"{split}.csv")
    }  # fmt: skip
    assert texts == {"40217", "9’83"}
    # A second run reuses the import; the manifest's words are the manifest's.
    again, _ = real_corpus.build_collection(
        dataclasses.replace(collection, attribution="Tests, again"), snapshot, tmp_path / "out", alphabet, args
    )
    assert again["attribution"] == "Tests, again" and again["train_lines"] == row["train_lines"]
