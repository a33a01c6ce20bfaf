"""Large synthetic corpora for base models: lines of real text in many fonts, degraded like real
scans (``scan``) or distorted into many "hands" (``handwriting``).

Reproducible and streamed: line ``i`` is drawn from ``random.Random(f"{seed}:{i}")`` alone, so the
same command writes the same corpus with any number of workers, and images are written as they are
made, in shards of ``shard_size`` (``images/0000/``, ...), never held together in memory. The
validation split holds font families and text lines that training never sees (``holdout``), so it
checks reading of unseen fonts. ``manifest.json`` records the command's settings, every font
(family, file, SHA-256) and every text source; ``fonts.csv`` the font of each line.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterator, Sequence
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tf_crnn.artifacts import ALPHABET_FILENAME
from tf_crnn.atomic import write_json
from tf_crnn.data.fonts import font_family, usable_fonts
from tf_crnn.datasets.synthetic import _font, font_characters, jpeg_artefacts
from tf_crnn.records import join_units

STYLES = ("scan", "handwriting")
MANIFEST_FILENAME = "manifest.json"


# --- rendering ----------------------------------------------------------------------------------


def _paper(size: tuple[int, int], level: int, rng: random.Random, texture: float) -> np.ndarray:
    """A paper background: ``level`` plus low-frequency blotches of amplitude ``texture``."""
    width, height = size
    paper = np.full((height, width), float(level), dtype=np.float32)
    if texture > 0:
        coarse = np.random.default_rng(rng.getrandbits(32)).normal(0, 1, (max(height // 12, 2), max(width // 12, 2)))
        blotches = Image.fromarray(coarse.astype(np.float32), mode="F").resize((width, height), Image.BICUBIC)
        paper += texture * np.asarray(blotches)
    return paper


def _draw_line(text: str, font: str, size: int, rng: random.Random, jitter: float) -> tuple[Image.Image, int, int]:
    """The line as an ink mask (255 = ink), with its baseline and line height; ``jitter`` > 0 draws
    each character with its own baseline, size and spacing offsets (a hand never repeats a glyph)."""
    face = _font(font, size)
    ascent, descent = face.getmetrics()
    height = ascent + descent
    pad = size
    width = int(face.getlength(text) * (1.5 if jitter > 0 else 1)) + 2 * pad
    mask = Image.new("L", (max(width, 1), height + 2 * pad), 0)
    draw = ImageDraw.Draw(mask)
    baseline = pad + ascent
    if jitter <= 0:
        draw.text((pad, baseline), text, fill=255, font=face, anchor="ls")
        return mask, baseline, height
    x = float(pad)
    drift_amplitude, drift_period = rng.uniform(0, 0.08) * size, rng.uniform(4, 14) * size
    phase = rng.uniform(0, 2 * math.pi)
    for char in text:
        char_face = _font(font, max(size + round(rng.gauss(0, jitter * size)), 6))
        drift = drift_amplitude * math.sin(phase + 2 * math.pi * x / drift_period)
        y = baseline + drift + rng.gauss(0, jitter * size * 0.6)
        draw.text((x, y), char, fill=255, font=char_face, anchor="ls")
        x += char_face.getlength(char) * (1 + rng.gauss(0, jitter))
    return mask.crop((0, 0, min(int(x) + pad, mask.width), mask.height)), baseline, height


def _shear(mask: Image.Image, shear: float) -> Image.Image:
    """Slants the mask (x += shear * (baseline-relative height)); positive leans right."""
    extra = int(abs(shear) * mask.height) + 1
    offset = -extra if shear > 0 else 0
    matrix = (1, shear, offset, 0, 1, 0)
    return mask.transform((mask.width + extra, mask.height), Image.AFFINE, matrix, Image.BILINEAR)


def _elastic(mask: Image.Image, rng: random.Random, strength: float, cell: int) -> Image.Image:
    """A smooth random warp (a mesh of ``cell``-pixel quads whose corners move by up to ``strength``)."""
    columns, rows = mask.width // cell + 2, mask.height // cell + 2
    shifts = np.random.default_rng(rng.getrandbits(32)).uniform(-strength, strength, (rows + 1, columns + 1, 2))
    mesh = []
    for r in range(rows):
        for c in range(columns):
            box = (c * cell, r * cell, (c + 1) * cell, (r + 1) * cell)
            corners = []
            for dr, dc in ((0, 0), (1, 0), (1, 1), (0, 1)):
                sx, sy = shifts[r + dr, c + dc]
                corners += [(c + dc) * cell + sx, (r + dr) * cell + sy]
            mesh.append((box, corners))
    return mask.transform(mask.size, Image.MESH, mesh, Image.BILINEAR)


def _crop_line(mask: Image.Image, height: int, rng: random.Random) -> tuple[int, int, int, int]:
    """A line box as a segmenter makes it: around the ink, with random margins, sometimes
    cutting into the ascenders or descenders."""
    box = mask.getbbox() or (0, 0, mask.width, mask.height)
    left, top, right, bottom = box
    margin = max(height // 8, 1)
    top = top - rng.randint(0, 2 * margin)
    bottom = bottom + rng.randint(0, 2 * margin)
    if rng.random() < 0.15:
        top += rng.randint(0, max(height // 7, 1))
    if rng.random() < 0.15:
        bottom -= rng.randint(0, max(height // 8, 1))
    left -= rng.randint(0, 3 * margin)
    right += rng.randint(0, 3 * margin)
    return left, max(top, 0), right, min(bottom, mask.height)


def _degrade_scan(pixels: np.ndarray, rng: random.Random) -> Image.Image:
    """The losses of a scan or its storage: low resolution, blur, noise, binarisation, JPEG."""
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        factor = rng.uniform(0.35, 0.75)
        small = image.resize(
            (max(round(image.width * factor), 1), max(round(image.height * factor), 1)), Image.BILINEAR
        )
        image = small.resize(image.size, rng.choice((Image.BILINEAR, Image.BICUBIC, Image.NEAREST)))
    if rng.random() < 0.35:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.1)))
    if rng.random() < 0.4:
        noisy = np.asarray(image, dtype=np.float32)
        noisy = noisy + np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(2, 14), noisy.shape)
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    if rng.random() < 0.45:
        # Bilevel, as many archives store their lines: a global threshold near the ink/paper midpoint.
        values = np.asarray(image)
        threshold = float(np.percentile(values, 50)) * rng.uniform(0.55, 0.8)
        image = Image.fromarray(np.where(values > threshold, 255, 0).astype(np.uint8))
    elif rng.random() < 0.35:
        image = jpeg_artefacts(image, rng.randint(25, 85))
    return image


def render_scan_line(text: str, font: str, rng: random.Random, neighbours: Sequence[str] = ()) -> Image.Image:
    """A printed line as a scanned page's line crop shows it: font size 18-44 px, skew ±3°, shear
    ±0.35 (rarely), ink bleed or erosion, a neighbour line's descenders or ascenders, paper texture,
    then ``_degrade_scan``."""
    size = rng.randint(18, 44)
    mask, baseline, height = _draw_line(text, font, size, rng, jitter=0.0)
    if neighbours and rng.random() < 0.3:
        # The lines above and below, a line spacing away: their tails enter a tight crop.
        face = _font(font, size)
        spacing = int(height * rng.uniform(1.0, 1.3))
        own = mask.getbbox() or (0, 0, mask.width, mask.height)
        canvas = Image.new("L", (mask.width, mask.height + 2 * spacing), 0)
        canvas.paste(mask, (0, spacing))
        draw = ImageDraw.Draw(canvas)
        draw.text((size, baseline), neighbours[0][:80], fill=255, font=face, anchor="ls")
        draw.text((size, baseline + 2 * spacing), neighbours[-1][:80], fill=255, font=face, anchor="ls")
        margin = max(height // 3, 1)
        box = (own[0] - rng.randint(0, margin), own[1] + spacing - rng.randint(0, margin),
               own[2] + rng.randint(0, margin), own[3] + spacing + rng.randint(0, margin))  # fmt: skip
        mask = canvas
    else:
        box = _crop_line(mask, height, rng)
    if rng.random() < 0.25:
        # Ink bleed, or erosion where strokes are thick enough to survive it.
        erode = size >= 30 and rng.random() < 0.4
        mask = mask.filter(ImageFilter.MinFilter(3) if erode else ImageFilter.MaxFilter(3))
    if rng.random() < 0.15:
        mask = _shear(mask, rng.uniform(-0.35, 0.35))
        box = (box[0], box[1], box[2] + int(0.35 * mask.height), box[3])
    mask = mask.crop(box)
    if rng.random() < 0.6:
        mask = mask.rotate(rng.uniform(-3, 3), resample=Image.BILINEAR, expand=True)
    paper_level, ink_level = rng.randint(185, 255), rng.randint(0, 70)
    paper = _paper(mask.size, paper_level, rng, texture=rng.uniform(0, 8) if rng.random() < 0.5 else 0)
    alpha = np.asarray(mask, dtype=np.float32) / 255.0
    return _degrade_scan(paper * (1 - alpha) + ink_level * alpha, rng)


def render_handwritten_line(text: str, font: str, rng: random.Random) -> Image.Image:
    """A line in a handwriting font made into a "hand" of its own: per-character jitter and
    baseline drift, slant, elastic warp, stroke width, faded ink on textured paper."""
    size = rng.randint(24, 48)
    mask, baseline, height = _draw_line(text, font, size, rng, jitter=rng.choice((0.0, 0.02, 0.04, 0.06)))
    if rng.random() < 0.8:
        mask = _shear(mask, rng.uniform(-0.2, 0.45))
    if rng.random() < 0.7:
        mask = _elastic(mask, rng, strength=rng.uniform(0.5, 2.5) * size / 32, cell=max(size // 3, 6))
    if rng.random() < 0.3:
        # Thicker strokes only: eroding the thin strokes of script fonts erases them.
        mask = mask.filter(ImageFilter.MaxFilter(3))
    mask = mask.crop(_crop_line(mask, height, rng))
    if rng.random() < 0.5:
        mask = mask.rotate(rng.uniform(-2.5, 2.5), resample=Image.BILINEAR, expand=True)
    paper_level = rng.randint(170, 245)
    ink_level = rng.randint(10, paper_level - 90)
    paper = _paper(mask.size, paper_level, rng, texture=rng.uniform(1, 8))
    alpha = np.asarray(mask, dtype=np.float32) / 255.0
    pixels = paper * (1 - alpha) + ink_level * alpha
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.3:
        image = jpeg_artefacts(image, rng.randint(40, 90))
    return image


# --- the corpus ---------------------------------------------------------------------------------


def holdout_families(families: Sequence[str], share: float, seed: int) -> set[str]:
    """The font families kept for validation: a ``share`` of them, drawn by a hash of the name and
    the seed (stable when fonts are added)."""

    def draw(family: str) -> float:
        return int(hashlib.sha256(f"{seed}:{family}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    return {family for family in set(families) if draw(family) < share}


class _Plan:
    """What rendering line ``i`` needs; set in the parent before the workers fork (the text list is
    large: sent with each task, it would cost more than the rendering)."""

    def __init__(self, style, texts, train_fonts, val_fonts, families, seed, val_every, out):
        self.style, self.texts, self.seed, self.out, self.families = style, texts, seed, out, families
        self.fonts = {"train": train_fonts, "val": val_fonts}
        self.val_every = val_every
        # Every 20th text line is validation's: validation reads text training never saw.
        self.text_indices = {"val": range(0, len(texts), 20), "train": [j for j in range(len(texts)) if j % 20]}
        if not self.text_indices["train"]:
            self.text_indices["train"] = range(len(texts))

    def split(self, i: int) -> str:
        return "val" if self.val_every and i % self.val_every == 0 else "train"

    def render(self, i: int) -> tuple[int, str, str, str] | None:
        rng = random.Random(f"{self.seed}:{i}")
        split = self.split(i)
        for _ in range(20):
            text = self.texts[rng.choice(self.text_indices[split])]
            fitting = [f for f in self.fonts[split] if set(text) - {" "} <= font_characters(f)]
            if fitting:
                break
        else:
            return None
        # A family first, then one of its files: a family shipped in 70 optical sizes and weights
        # is one typeface, not 70.
        family = rng.choice(sorted({self.families[f] for f in fitting}))
        font = rng.choice([f for f in fitting if self.families[f] == family])
        if self.style == "scan":
            neighbours = [self.texts[rng.randrange(len(self.texts))] for _ in range(2)]
            image = render_scan_line(text, font, rng, neighbours)
        else:
            image = render_handwritten_line(text, font, rng)
        name = f"images/{i // 10000:04d}/{i:07d}.png"
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        return i, name, text, font


_PLAN: _Plan | None = None


def _render(i: int):
    return _PLAN.render(i)


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_text_lines(
    path: str | Path, alphabet: set[str] | None, min_chars: int = 3, max_chars: int = 70
) -> Iterator[str]:
    """A text source's lines (a .txt file, or a data set CSV's labels), whitespace collapsed, long
    lines cut at a space, lines with a character outside ``alphabet`` left out."""
    from tf_crnn.records import read_csv_rows, split_label

    path = Path(path)
    if path.suffix == ".csv":
        lines: Iterator[str] = ("".join(split_label(label)) for _, _, label in read_csv_rows(path) if label)
    else:
        lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        line = " ".join(line.split())
        while line:
            if len(line) <= max_chars:
                piece, line = line, ""
            else:
                cut = line.rfind(" ", min_chars, max_chars)
                cut = cut if cut > 0 else max_chars
                piece, line = line[:cut], line[cut:].strip()
            # "|" separates the units of a label: a line holding it cannot be written as one.
            if len(piece) >= min_chars and "|" not in piece and (alphabet is None or set(piece) <= alphabet):
                yield piece


def build_corpus(
    out_dir: str | Path,
    texts: Sequence[str | Path],
    fonts: Sequence[str | Path],
    n_lines: int,
    style: str = "scan",
    seed: int = 0,
    val_share: float = 0.02,
    holdout: float = 0.1,
    alphabet: str | Path | None = None,
    workers: int = 2,
    progress=None,
) -> dict[str, Path]:
    """Writes a corpus of ``n_lines`` into ``out_dir`` (``train.csv``, ``val.csv``, ``alphabet.json``,
    ``fonts.csv``, ``manifest.json``, ``images/NNNN/``).

    Args:
        texts: text files (one line each) or data set CSVs (their labels), read whole; lines with a
            character outside ``alphabet`` are left out.
        fonts: font files or folders of them; reserved families are refused (``tf_crnn.data.fonts``).
        style: ``scan`` (printed, degraded like a scan) or ``handwriting``.
        val_share: the share of lines in ``val.csv``; ``holdout``: the share of font families only
            it uses.
        alphabet: an alphabet JSON whose units the lines may use (written as the corpus's
            alphabet); None: the characters of the texts.
        progress: called with the number of lines written so far.

    Raises:
        ValueError: a reserved font, no usable font or text, an unknown style.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}: use one of {', '.join(STYLES)}")
    out = Path(out_dir)
    font_files = usable_fonts(list(fonts))
    if not font_files:
        raise ValueError("no font file (.ttf, .otf) in the fonts given")
    units, lookup = None, None
    if alphabet is not None:
        lookup = json.loads(Path(alphabet).read_text(encoding="utf-8"))
        units = set(lookup)
    lines: list[str] = []
    sources = []
    for source in texts:
        read = list(dict.fromkeys(read_text_lines(source, units)))
        sources.append({"file": str(source), "lines": len(read), "sha256": _sha256(source)})
        lines.extend(read)
    lines = list(dict.fromkeys(lines))
    if not lines:
        raise ValueError("no usable text line in the texts given (check the alphabet)")
    families = {f: font_family(f) for f in font_files}
    held = holdout_families(list(families.values()), holdout, seed) if val_share > 0 else set()
    train_fonts = [f for f in font_files if families[f] not in held]
    val_fonts = [f for f in font_files if families[f] in held] or train_fonts
    val_every = round(1 / val_share) if val_share > 0 else 0
    global _PLAN
    plan = _PLAN = _Plan(style, lines, train_fonts, val_fonts, families, seed, val_every, out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    written = {"train": 0, "val": 0}
    csvs = {split: open(out / f"{split}.csv", "w", encoding="utf-8", newline="") for split in written}
    with open(out / "fonts.csv", "w", encoding="utf-8", newline="") as font_log:
        try:
            with get_context("fork").Pool(workers) if workers > 1 else _Serial() as pool:
                for done in pool.imap(_render, range(n_lines), chunksize=64):
                    if done is None:
                        continue
                    i, name, text, font = done
                    split = plan.split(i)
                    csvs[split].write(f"{name};{join_units(text)}\n")
                    font_log.write(f"{name};{families[font]}\n")
                    written[split] += 1
                    if progress is not None and sum(written.values()) % 1000 == 0:
                        progress(sum(written.values()))
        finally:
            for f in csvs.values():
                f.close()
    if lookup is None:
        lookup = {c: i for i, c in enumerate(sorted(set("".join(lines))), start=1)}
    write_json(out / ALPHABET_FILENAME, lookup)
    manifest = {
        "style": style,
        "seed": seed,
        "n_lines": n_lines,
        "written": written,
        "val_share": val_share,
        "holdout": holdout,
        "alphabet": str(alphabet) if alphabet else None,
        "texts": sources,
        "text_lines": len(lines),
        "fonts": [
            {"file": f, "family": families[f], "sha256": _sha256(f), "split": "val" if families[f] in held else "train"}
            for f in font_files
        ],
    }
    write_json(out / MANIFEST_FILENAME, manifest)
    return {"train": out / "train.csv", "val": out / "val.csv", "alphabet": out / ALPHABET_FILENAME}


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap(function, items, chunksize=1):
        return map(function, items)


__all__ = [
    "STYLES",
    "build_corpus",
    "holdout_families",
    "read_text_lines",
    "render_handwritten_line",
    "render_scan_line",
]
