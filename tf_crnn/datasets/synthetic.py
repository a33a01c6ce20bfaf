"""Synthetic text-line data sets, rendered with Pillow's bundled font (no system fonts needed) or
with font files given by the user.

Used by ``make demo``, the tests and ``benchmarks/unseen_fonts.py``; written in the project's own
CSV and alphabet formats.
"""

from __future__ import annotations

import io
import json
import random
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, features

from tf_crnn.artifacts import ALPHABET_FILENAME
from tf_crnn.data.direction import has_right_to_left
from tf_crnn.records import join_units, write_csv_rows

DEFAULT_CHARSET = "abcdefghijklmnopqrstuvwxyz0123456789 "


def random_text(rng: random.Random, charset: str, min_words: int, max_words: int) -> str:
    letters = charset.replace(" ", "")
    words = []
    for _ in range(rng.randint(min_words, max_words)):
        words.append("".join(rng.choice(letters) for _ in range(rng.randint(2, 7))))
    return (" " if " " in charset else "").join(words)


@cache
def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size) if path is None else ImageFont.truetype(path, size)


@cache
def font_characters(path: str) -> frozenset[str]:
    """The characters a font file has glyphs for (its Unicode cmap)."""
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return frozenset(chr(code) for code in font.getBestCmap())


def render_line(
    text: str,
    rng: random.Random,
    font_size: int = 24,
    noise: bool = True,
    font: str | None = None,
    direction: str = "auto",
) -> Image.Image:
    """A grayscale image of one line of text, dark on light, with random margins.

    ``font``: a TrueType/OpenType file; None: Pillow's bundled font. ``direction`` (a
    ``text_direction``): how a line that holds right-to-left letters is laid out (Pillow with
    libraqm: its order, mirrored brackets, Arabic joining): ``rtl`` as a line of a right-to-left
    document, ``ltr`` of a left-to-right one, ``auto`` from its first strong letter.
    """
    face = _font(font, font_size)
    layout = {"direction": direction} if direction != "auto" and has_right_to_left(text) else {}
    if layout and not features.check("raqm"):
        raise ValueError(
            "laying out right-to-left text needs Pillow with libraqm (its wheels carry it, and load libfribidi: "
            "apt-get install libfribidi0)"
        )
    left, top, right, bottom = face.getbbox(text, **layout)
    margin_x, margin_y = rng.randint(2, 12), rng.randint(2, 8)
    width = right - left + 2 * margin_x
    height = bottom - top + 2 * margin_y
    paper = rng.randint(200, 255)
    ink = rng.randint(0, 60)
    image = Image.new("L", (max(width, 1), max(height, 1)), color=paper)
    ImageDraw.Draw(image).text((margin_x - left, margin_y - top), text, fill=ink, font=face, **layout)
    if noise and rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    return image


def jpeg_artefacts(image: Image.Image, quality: int) -> Image.Image:
    """``image`` as it comes back from JPEG compression at ``quality``, in grey."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("L")


def degrade(image: Image.Image, rng: random.Random) -> Image.Image:
    """The degradations of a scanned or photographed line: slight rotation, blur, Gaussian noise,
    rescaling by 0.6-1.2 and JPEG artefacts, each drawn at random."""
    background = int(np.median(np.asarray(image)))
    if rng.random() < 0.5:
        image = image.rotate(rng.uniform(-2.0, 2.0), resample=Image.BICUBIC, expand=True, fillcolor=background)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    scale = rng.uniform(0.6, 1.2)
    image = image.resize((max(round(image.width * scale), 1), max(round(image.height * scale), 1)), Image.BILINEAR)
    if rng.random() < 0.5:
        pixels = np.asarray(image, dtype=np.float32)
        pixels = pixels + np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(3, 12), pixels.shape)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        image = jpeg_artefacts(image, rng.randint(30, 80))
    return image


def make_dataset(
    out_dir: str | Path,
    n_train: int = 1000,
    n_eval: int = 200,
    charset: str = DEFAULT_CHARSET,
    min_words: int = 1,
    max_words: int = 3,
    font_sizes: tuple[int, int] = (20, 28),
    seed: int = 0,
    fonts: list[str] | None = None,
    texts: list[str] | None = None,
    degraded: bool = False,
    direction: str = "auto",
) -> dict[str, Path]:
    """Writes ``images/``, ``train.csv``, ``eval.csv`` and ``alphabet.json`` into ``out_dir``.

    Args:
        fonts: font files to draw each line's font from (among those with glyphs for all of its
            characters); None: Pillow's bundled font. ``fonts.csv`` records each image's font.
        texts: the lines to render, in turn (the alphabet is then their characters); None: random
            words of ``charset``.
        degraded: apply ``degrade`` (rotation, blur, noise, rescaling, JPEG) to each image.
        direction: how lines with right-to-left letters are laid out (``render_line``); train a
            model on them with the same ``text_direction``.

    Returns:
        ``{"train": ..., "eval": ..., "alphabet": ...}`` paths.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    if texts is not None:
        if not texts:
            raise ValueError("no text lines to render")
        charset = "".join(sorted(set("".join(texts))))
    lines = iter(texts * (1 + (n_train + n_eval) // len(texts))) if texts else None
    paths, used = {}, []
    for split, n in (("train", n_train), ("eval", n_eval)):
        rows = []
        for i in range(n):
            text = next(lines) if lines else random_text(rng, charset, min_words, max_words)
            font = None
            if fonts:
                fitting = [f for f in fonts if set(text) - {" "} <= font_characters(f)]
                if not fitting:
                    raise ValueError(f"no font given has glyphs for every character of {text!r}")
                font = rng.choice(fitting)
            image = render_line(text, rng, rng.randint(*font_sizes), font=font, direction=direction)
            if degraded:
                image = degrade(image, rng)
            name = f"images/{split}_{i:05d}.png"
            image.save(out / name)
            rows.append((name, join_units(text)))
            used.append((name, font or "Pillow default"))
        # The names tf-crnn import writes: train.csv and val.csv.
        paths[split] = out / ("val.csv" if split == "eval" else "train.csv")
        write_csv_rows(paths[split], rows)
    if fonts:
        write_csv_rows(out / "fonts.csv", used)
    alphabet = {c: i for i, c in enumerate(charset, start=1)}
    paths["alphabet"] = out / ALPHABET_FILENAME
    paths["alphabet"].write_text(json.dumps(alphabet, ensure_ascii=False), encoding="utf-8")
    return paths


__all__ = [
    "DEFAULT_CHARSET",
    "degrade",
    "font_characters",
    "jpeg_artefacts",
    "make_dataset",
    "random_text",
    "render_line",
]
