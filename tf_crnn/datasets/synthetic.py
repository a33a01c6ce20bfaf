"""Synthetic text-line data sets, rendered with Pillow's bundled font (no system fonts needed).

Used by ``make demo`` and the tests; written in the project's own CSV and alphabet formats.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tf_crnn.records import join_units, write_csv_rows

DEFAULT_CHARSET = "abcdefghijklmnopqrstuvwxyz0123456789 "


def random_text(rng: random.Random, charset: str, min_words: int, max_words: int) -> str:
    letters = charset.replace(" ", "")
    words = []
    for _ in range(rng.randint(min_words, max_words)):
        words.append("".join(rng.choice(letters) for _ in range(rng.randint(2, 7))))
    return (" " if " " in charset else "").join(words)


def render_line(text: str, rng: random.Random, font_size: int = 24, noise: bool = True) -> Image.Image:
    """A grayscale image of one line of text, dark on light, with random margins."""
    font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = font.getbbox(text)
    margin_x, margin_y = rng.randint(2, 12), rng.randint(2, 8)
    width = right - left + 2 * margin_x
    height = bottom - top + 2 * margin_y
    paper = rng.randint(200, 255)
    ink = rng.randint(0, 60)
    image = Image.new("L", (max(width, 1), max(height, 1)), color=paper)
    ImageDraw.Draw(image).text((margin_x - left, margin_y - top), text, fill=ink, font=font)
    if noise and rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
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
) -> dict[str, Path]:
    """Writes ``images/``, ``train.csv``, ``eval.csv`` and ``alphabet.json`` into ``out_dir``.

    Returns:
        ``{"train": ..., "eval": ..., "alphabet": ...}`` paths.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = {}
    for split, n in (("train", n_train), ("eval", n_eval)):
        rows = []
        for i in range(n):
            text = random_text(rng, charset, min_words, max_words)
            image = render_line(text, rng, rng.randint(*font_sizes))
            name = f"images/{split}_{i:05d}.png"
            image.save(out / name)
            rows.append((name, join_units(text)))
        paths[split] = out / f"{split}.csv"
        write_csv_rows(paths[split], rows)
    alphabet = {c: i for i, c in enumerate(charset, start=1)}
    paths["alphabet"] = out / "alphabet.json"
    paths["alphabet"].write_text(json.dumps(alphabet, ensure_ascii=False), encoding="utf-8")
    return paths


__all__ = ["DEFAULT_CHARSET", "make_dataset", "random_text", "render_line"]
