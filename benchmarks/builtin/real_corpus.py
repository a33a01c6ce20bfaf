"""Builds the real-line training corpus of the shipped models from clones of public collections.

    python benchmarks/builtin/real_corpus.py ~/collections -o ~/corpus/real --group handwriting-fr

``~/collections`` holds one folder per collection named ``owner+name`` (``git clone`` work trees,
or bare snapshots: a bare git directory, ``repo/`` inside the folder or the folder itself). Bare
snapshots are read blob by blob at the commit the manifest names (or HEAD with ``--head``):
files the snapshot lacks (page scans of 4 MiB or more) are skipped, each page counted in the report.

Per collection, the lines are cut by ``tf-crnn import``'s own functions (``document_samples``,
``write_dataset``), their texts brought to one transcription guide (``normalise``: below), and
split by document (a register, a volume, a letter: ``document`` in the manifest), so that
validation holds documents training never saw. Written to ``OUT``:

- ``<collection>/``: the collection's import (``train.csv``, ``val.csv``, ``images/``,
  ``import_report.csv`` with every line left out and why);
- ``train.csv`` and ``val.csv``: every collection's lines, paths relative to ``OUT``;
  ``val-sample.csv``: ``--val-sample`` validation lines of each collection, for training to
  validate on each epoch (the full ``val.csv`` gives the per-collection tables);
- ``collections.csv``: per collection its commit, licence, attribution and line counts
  (kept, left out by reason), the table of the model cards and BENCHMARKS.

The transcription guide (the shared Poilus pages' conventions, which the shipped model reads):
Unicode NFC; the apostrophe as the model reads it (``’`` for ``handwriting-fr``, as the Poilus
pages write it; ``'`` for ``printed-latin``, as the shared lines do); ``^`` before superscript letters kept
(``M^r``, as Poilus and LECTAUREP write them); spaces collapsed. A line is left out, with its
reason counted, when it holds markup of unread or struck-out text (``XXX`` for words not read in
LECTAUREP, ``#`` for crossed-out words in Peraire: the image shows ink its text does not have),
or a character outside the model's alphabet (``--alphabet``).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_FILENAME = "collection.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


@dataclass(frozen=True)
class Collection:
    repo: str
    group: str
    """The model it trains: ``handwriting-fr`` or ``printed-latin``."""
    commit: str
    kind: str
    """``alto`` or ``page``: the format read (a collection holding both is read in one)."""
    include: str
    """Regular expression on the files' paths in the repository: the pages taken."""
    document: str
    """Regular expression whose first group of a page's path names its document (writer, volume)."""
    licence: str
    attribution: str
    leave_out: str = ""
    """Regular expression: a line whose text matches is left out (the collection's markup)."""
    held_out: str = "documents"
    """What validation holds out: whole documents (other writers), or, where a collection has
    too few documents for that, blocks of pages (then the same hands are in both splits)."""


COLLECTIONS = (
    Collection(
        "HTR-United/lectaurep-repertoires",
        "handwriting-fr",
        "3d1c86cf5389265a1ce8b620301d36b4709eb435",
        "alto",
        r"^data/",
        r"^data/([^/]+)/",
        "CC BY 4.0",
        "LECTAUREP, répertoires de notaires (Archives nationales, Inria ALMAnaCH, EPHE), "
        "HTR-United/lectaurep-repertoires",
        leave_out=r"XXX",
    ),
    Collection(
        "HTR-United/timeuscorpus",
        "handwriting-fr",
        "df8ee63837dabe79c511e8aa748f465da5e2d5e5",
        "alto",
        r"^data/.*/alto/(?!METS)",
        r"^data/([^/]+/alto/PH \d{4}-\d*?)\d\D",
        "CC BY 4.0",
        "Chagué, A., Champougny, K., Meissel, N., Genero, J. et al., Time Us Corpus, HTR-United/timeuscorpus",
        held_out="blocks of ten pages of its two registers (the registers' clerks write in both splits)",
    ),
    Collection(
        "alix-tz/peraire-ground-truth",
        "handwriting-fr",
        "61b321ed05fc1d40e6c6e4351fd2162fd5bff478",
        "alto",
        r"^data/",
        r"^data/[^/]+/(?:test_)?([^/_]+)_\d+\.",
        "CC BY 4.0",
        "Chagué, A., Peraire ground truth (travel diaries of Henriette Peraire, 1947-1960), "
        "alix-tz/peraire-ground-truth",
        leave_out=r"#",
    ),
    Collection(
        "HTR-United/CREMMA-MSS-19",
        "handwriting-fr",
        "d8f466de72561cd989f957d75a6743c5d8f0a262",
        "alto",
        r"^data/",
        r"^data/([^/]+)/",
        "CC BY 4.0",
        "CREMMA, manuscrits du XIXe siècle (Chagué, Clérice et al.), HTR-United/CREMMA-MSS-19",
    ),
    Collection(
        "HTR-United/lectaurep-mariages-et-divorces",
        "handwriting-fr",
        "6c4edfb818c0da2390cbeb416ee8d15af8846f11",
        "page",
        r"^lectaurep-",
        r"([^/]+)\.xml$",
        "CC BY 4.0",
        "LECTAUREP, contrats de mariage et divorces (Archives nationales), HTR-United/lectaurep-mariages-et-divorces",
        leave_out=r"XXX",
        held_out="pages (the snapshot holds the images of 7 pages of one register: the same hands in both splits)",
    ),
    Collection(
        "HTR-United/lectaurep-bronod",
        "handwriting-fr",
        "1b4ac12dfb41634538b1e7149dd62fd04d5d6dd8",
        "alto",
        r"^data/[^/]+/alto/",
        r"^data/[^/]+/alto/(\d{3})",
        "CC BY 4.0",
        "LECTAUREP, répertoire de Maître Louis Bronod (1742-1745), HTR-United/lectaurep-bronod",
        leave_out=r"XXX",
        held_out="blocks of ten pages of one register (one notary's clerks write in both splits)",
    ),
    Collection(
        "FloChiff/ehri-dataset",
        "printed-latin",
        "20a5e002031c1f9e66176133b4602ed439db6521",
        "alto",
        r"^data/",
        r"^data/[^/]+/(.+)_\d+\.xml$",
        "CC BY 4.0",
        "Chiffoleau, F., EHRI typescripts (German, English, Czech, Danish, Hungarian, Slovak, Polish), "
        "FloChiff/ehri-dataset",
    ),
    Collection(
        "HTR-United/tapuscorpus",
        "printed-latin",
        "f18a6afe067bdb213d58ba2b69c3a04013149685",
        "alto",
        r"^data/",
        r"^data/([^/]+)/",
        "CC BY 4.0",
        "Tapuscorpus, typewritten documents of the 20th century (Chagué et al.), HTR-United/tapuscorpus",
    ),
    Collection(
        "FoNDUE-HTR/FONDUE-MLT-ART",
        "printed-latin",
        "08d6e83060a940b8084a0db3acb560e3ddbdcff9",
        "alto",
        r"^data/",
        r"^data/[^/]+/([^/]+)/",
        "CC BY 2.0 (transcriptions; the catalogues are in the public domain)",
        "FoNDUE-MLT-ART, Swiss art exhibition catalogues 1842-1961 (University of Geneva; images SIK-ISEA), "
        "FoNDUE-HTR/FONDUE-MLT-ART",
    ),
    Collection(
        "PSL-Chartes-HTR-Students/TNAH-2021-ArgusDesBrevets",
        "printed-latin",
        "37a35e2ee3a3e869fcc6d71d459380feea25054b",
        "alto",
        r"^data/",
        r"^data/(\d*?)\d_",
        "CC BY 4.0",
        "Argus des brevets d'invention 1910, master TNAH (École nationale des chartes), "
        "PSL-Chartes-HTR-Students/TNAH-2021-ArgusDesBrevets",
        held_out="blocks of ten pages of one volume (the same type in both splits)",
    ),
    Collection(
        "PSL-Chartes-HTR-Students/TNAH-2021-Expositions_Universelles",
        "printed-latin",
        "7d4f6895ae0968cd231f6c7917df9400ec6af939",
        "alto",
        r"^Donnees/",
        r"^Donnees/([^/]+)/",
        "CC BY 4.0",
        "Congrès international des sciences ethnographiques 1878 (Imprimerie nationale, 1881), master TNAH "
        "(École nationale des chartes), PSL-Chartes-HTR-Students/TNAH-2021-Expositions_Universelles",
    ),
)


APOSTROPHE = {"handwriting-fr": ("'", "’"), "printed-latin": ("’", "'")}
"""The apostrophe each model reads: the Poilus pages' ``’``, the shared printed lines' ``'``."""


def normalise(text: str, group: str = "handwriting-fr") -> str:
    """A transcription in the corpus's guide (see the module's docstring)."""
    text = unicodedata.normalize("NFC", text).replace(*APOSTROPHE[group])
    return re.sub(r"\s+", " ", text).strip()


# === Snapshots ===


def _git_dir(folder: Path) -> Path | None:
    """The bare git directory of a snapshot folder, or None for a work tree."""
    for candidate in (folder / "repo", folder):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None


def materialise(collection: Collection, folder: Path, work: Path, head: bool) -> tuple[Path, str, list]:
    """The collection's pages as files: the work tree itself, or its files read out of a bare
    snapshot into ``work``. Returns the folder, the commit read and the files missing."""
    git_dir = _git_dir(folder)
    if git_dir is None:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        return folder, commit or "unknown", []
    git = ["git", "--git-dir", str(git_dir)]
    commit = collection.commit
    if head or subprocess.run([*git, "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True).returncode:
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    listing = subprocess.run(
        [*git, "ls-tree", "-r", "-z", commit], capture_output=True, text=True, check=True
    ).stdout.split("\0")
    wanted = []
    for entry in filter(None, listing):
        meta, path = entry.split("\t", 1)
        if re.search(collection.include, path) or (
            Path(path).suffix.lower() in IMAGE_SUFFIXES and re.search(collection.include, str(Path(path).parent) + "/")
        ):
            if path.endswith(".xml") or Path(path).suffix.lower() in IMAGE_SUFFIXES:
                wanted.append((meta.split()[2], path))
    # Images may sit a folder above their XML (timeuscorpus: page.jpg beside alto/page.xml).
    xml_folders = {str(Path(p).parent) for _, p in wanted if p.endswith(".xml")}
    for entry in filter(None, listing):
        meta, path = entry.split("\t", 1)
        parent = str(Path(path).parent)
        if Path(path).suffix.lower() in IMAGE_SUFFIXES and any(
            f == parent or str(Path(f).parent) == parent for f in xml_folders
        ):
            wanted.append((meta.split()[2], path))
    wanted = sorted(set(wanted), key=lambda item: item[1])
    target = work / collection.repo.replace("/", "+")
    missing = []
    with subprocess.Popen([*git, "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as batch:
        for sha, path in wanted:
            out = target / path
            batch.stdin.write(f"{sha}\n".encode())
            batch.stdin.flush()
            header = batch.stdout.readline().decode().split()
            if len(header) < 3 or header[1] != "blob":
                missing.append(path)
                continue
            data = batch.stdout.read(int(header[2]))
            batch.stdout.read(1)
            if not out.exists() or out.stat().st_size != len(data):
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
    return target, commit, missing


# === Import ===


def import_collection(collection, pages: Path, missing: list[str], out: Path, alphabet: set[str], seed: int):
    """Cuts, normalises and splits one collection into ``out``; returns its counts by reason."""
    from tf_crnn.datasets.importers import document_samples, write_dataset

    xml_files = sorted(
        p for p in pages.rglob("*.xml") if re.search(collection.include, p.relative_to(pages).as_posix())
    )
    samples, skipped = document_samples(xml_files, out.parent / f"{out.name}-crops", collection.kind)
    skipped = [(where, _missing_reason(reason, missing)) for where, reason in skipped]
    kept = []
    for sample in samples:
        text = normalise(sample.text, collection.group)
        relative = Path(sample.source.split(":")[0]).resolve().relative_to(pages.resolve()).as_posix()
        found = re.search(collection.document, relative)
        sample.document = found.group(1) if found else relative
        sample.text = text
        outside = sorted({c for c in text if c not in alphabet})
        if collection.leave_out and re.search(collection.leave_out, text):
            skipped.append((sample.source, "markup of unread or struck-out text"))
        elif outside:
            skipped.append((sample.source, "characters outside the alphabet: " + " ".join(outside)))
        else:
            kept.append(sample)
    documents = {Path(s.image).stem: s.document for s in kept}
    result = write_dataset(
        kept, out, skipped, split=(0.9, 0.1, 0.0), seed=seed, split_by="document",
        document_pattern=r"^(.*)$", preset="handwriting" if collection.group.startswith("handwriting") else "printed",
    )  # fmt: skip
    return result, documents


def _missing_reason(reason: str, missing: list[str]) -> str:
    """A page's reason, naming the snapshot where the image it lacks is one the snapshot left out."""
    if "not found" in reason and any(Path(path).stem in reason for path in missing):
        return "page image missing from the snapshot (4 MiB or more): " + reason
    return reason


def _reason_key(reason: str) -> str:
    """A reason without the names in it, to count by."""
    key = reason.split(":")[0]
    return "page image not found beside its document" if re.match(r"page image .* not found", key) else key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("collections", type=Path, help="folder of owner+name clones or snapshots")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--group", default="handwriting-fr", help="the collections of this model")
    parser.add_argument(
        "--alphabet", type=Path, help="the model's alphabet.json (default: the shipped model of --group)"
    )
    parser.add_argument("--only", nargs="*", help="owner/name of the collections to take (default: all of --group)")
    parser.add_argument("--head", action="store_true", help="read snapshots at HEAD, not at the manifest's commit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--val-sample", type=int, default=150, help="validation lines per collection in val-sample.csv (training's)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="collections cut at once (one core each)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tf_crnn.alphabet import Alphabet

    alphabet_file = args.alphabet or ROOT / "tf_crnn" / "models" / args.group / "alphabet.json"
    alphabet = set(Alphabet(lookup_alphabet_file=str(alphabet_file)).lookup)
    args.output.mkdir(parents=True, exist_ok=True)
    chosen = [c for c in COLLECTIONS if c.group == args.group and (not args.only or c.repo in args.only)]
    work = [c for c in chosen if (args.collections / c.repo.replace("/", "+")).is_dir()]
    for collection in sorted(set(chosen) - set(work), key=chosen.index):
        print(f"{collection.repo}: not in {args.collections}, skipped (clone it there)", file=sys.stderr)
    table, train_rows, val_rows, sample_rows = [], [], [], []
    # One process a collection: cutting lines is a core's work.
    with ProcessPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(build_collection, c, args.collections, args.output, alphabet, args) for c in work]
        for collection, job in zip(work, jobs):
            try:
                row, name = job.result()
            except (ValueError, OSError, subprocess.CalledProcessError) as error:
                print(f"{collection.repo}: not imported: {error}", file=sys.stderr)
                continue
            table.append(row)
            for split, rows in (("train", train_rows), ("val", val_rows)):
                for line in (args.output / name / f"{split}.csv").read_text(encoding="utf-8").splitlines():
                    rows.append(f"{name}/{line}")
            own = [r for r in val_rows if r.startswith(f"{name}/")]
            sample_rows += random.Random(args.seed).sample(own, min(args.val_sample, len(own)))
            print(f"{row['collection']}: {row['train_lines']} training, {row['val_lines']} validation lines; "
                  f"left out {row['left_out'] or 'none'}")  # fmt: skip
    (args.output / "train.csv").write_text("".join(r + "\n" for r in train_rows), encoding="utf-8")
    (args.output / "val.csv").write_text("".join(r + "\n" for r in val_rows), encoding="utf-8")
    (args.output / "val-sample.csv").write_text("".join(r + "\n" for r in sample_rows), encoding="utf-8")
    with (args.output / "collections.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]) if table else ["collection"])
        writer.writeheader()
        writer.writerows(table)
    print(f"{len(train_rows)} training and {len(val_rows)} validation lines in {args.output}")
    print(json.dumps({"train": str(args.output / "train.csv"), "val": str(args.output / "val.csv")}))


def build_collection(collection: Collection, collections: Path, output: Path, alphabet: set[str], args):
    """One collection from its snapshot to its import; returns its row of ``collections.csv``."""
    sys.path.insert(0, str(ROOT))
    folder = collections / collection.repo.replace("/", "+")
    pages, commit, missing = materialise(collection, folder, output / "sources", args.head)
    name = collection.repo.split("/")[1]
    summary = output / name / SUMMARY_FILENAME
    if summary.is_file():  # imported by an earlier run: delete the folder to import it again
        row = json.loads(summary.read_text(encoding="utf-8"))
        # The manifest's own words may have changed since; the counts are the import's.
        row.update(licence=collection.licence, attribution=collection.attribution, held_out=collection.held_out)
        return row, name
    result, document_of = import_collection(collection, pages, missing, output / name, alphabet, args.seed)
    reasons = Counter(_reason_key(reason) for _, reason in result.skipped)
    documents = {split: _documents(output / name / f"{split}.csv", document_of) for split in ("train", "val")}
    row = {
        "collection": collection.repo, "commit": commit, "licence": collection.licence,
        "attribution": collection.attribution, "train_lines": result.counts.get("train", 0),
        "val_lines": result.counts.get("val", 0), "train_documents": len(documents["train"]),
        "val_documents": len(documents["val"]), "held_out": collection.held_out, "files_missing": len(missing),
        "left_out": "; ".join(f"{n} x {r}" for r, n in reasons.most_common()),
    }  # fmt: skip
    summary.write_text(json.dumps(row, ensure_ascii=False, indent=1), encoding="utf-8")
    return row, name


def _documents(csv_file: Path, document_of: dict[str, str]) -> set[str]:
    """The documents of an import's CSV, by its crops' names."""
    if not csv_file.is_file():
        return set()
    stems = (Path(line.split(";")[0]).stem for line in csv_file.read_text(encoding="utf-8").splitlines())
    return {document_of.get(stem, stem) for stem in stems}


if __name__ == "__main__":
    main()
