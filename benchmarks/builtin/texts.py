"""Builds the text lines the base models' corpora render, from registry packages only.

    python benchmarks/builtin/texts.py ~/texts     # needs: apt-get install fortunes wamerican wfrench
                                                   #        debian-reference-fr; pip install faker

Writes ``english.txt``, ``french.txt`` and ``mixed.txt`` (one line each, 3-70 characters) and
``SOURCES.md`` (each source, its package and licence):

- English: Debian's ``fortunes`` (quotations), ``wamerican`` word sequences;
- French: the French Debian Reference (``debian-reference-fr``, prose), ``wfrench`` word sequences;
- both, and German, Spanish, Italian: Faker's locale data (names, addresses, dates, numbers,
  prices, sentences; MIT), the forms, registers and letters that archives hold.

Seeded (``--seed``): the same packages give the same files.
"""

from __future__ import annotations

import argparse
import datetime
import html
import random
import re
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
REFERENCE_FR = Path("/usr/share/doc/debian-reference-common/docs")
DICT = Path("/usr/share/dict")
NOT_PROSE = ("art", "ascii-art")
# Faker's dates run from 1970: a language model that never sees an earlier year reads the 1874 of
# an archive's page as 1974 (P(8 | "03/1") = e^-11.8 in the printed model's first 5-gram).
FIRST_DATE, LAST_DATE = datetime.date(1500, 1, 1), datetime.date(2030, 12, 31)


def fortunes() -> list[str]:
    lines = []
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or path.name in NOT_PROSE or not path.is_file():
            continue
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            # Keep prose: a quotation's lines joined; indented verse and attributions stay lines.
            lines.extend(" ".join(part.split()) for part in re.split(r"\n\s*\n|\n\s*--", entry) if part.strip())
    return lines


def reference_fr() -> list[str]:
    lines = []
    for path in sorted(REFERENCE_FR.glob("*.fr.html")):
        text = re.sub(r"<(script|style|pre)\b.*?</\1>", " ", path.read_text(encoding="utf-8"), flags=re.S | re.I)
        for paragraph in re.findall(r"<p\b[^>]*>(.*?)</p>", text, flags=re.S | re.I):
            prose = html.unescape(re.sub(r"<[^>]+>", "", paragraph))
            prose = " ".join(prose.split())
            if len(prose) > 20:
                lines.append(prose)
    return lines


def word_sequences(words_file: Path, n: int, rng: random.Random) -> list[str]:
    words = [w for w in words_file.read_text(encoding="utf-8").split() if "'" not in w or len(w) > 3]
    lines = []
    for _ in range(n):
        sequence = [rng.choice(words) for _ in range(rng.randint(2, 9))]
        if rng.random() < 0.3:
            sequence[0] = sequence[0].capitalize()
        line = " ".join(sequence)
        if rng.random() < 0.4:
            line += rng.choice(".,;:!?")
        lines.append(line)
    return lines


def faker_lines(locale: str, n: int, seed: int) -> list[str]:
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(seed)
    makers = (
        lambda: fake.name(),
        lambda: fake.address().replace("\n", ", "),
        lambda: fake.date_between(FIRST_DATE, LAST_DATE).strftime(
            random.choice(("%d/%m/%Y", "%d %B %Y", "%Y-%m-%d", "%B %d, %Y"))
        ),
        lambda: fake.sentence(nb_words=random.randint(4, 12)),
        lambda: fake.catch_phrase(),
        lambda: f"{fake.company()} - {fake.phone_number()}",
        lambda: f"{fake.job()}, {fake.city()}",
        lambda: f"{random.choice(('No.', 'N°', 'Ref.', '#'))} {fake.random_int(1, 99999)} : {fake.pricetag()}",
        lambda: fake.text(max_nb_chars=70).replace("\n", " "),
        lambda: f"{fake.day_of_month()} {fake.month_name()} {random.randint(FIRST_DATE.year, LAST_DATE.year)}",
    )
    random.seed(seed)
    return [random.choice(makers)() for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    english = (
        fortunes() + word_sequences(DICT / "american-english", 20000, rng) + faker_lines("en_US", 30000, args.seed)
    )
    french = reference_fr() + word_sequences(DICT / "french", 20000, rng) + faker_lines("fr_FR", 30000, args.seed)
    mixed = sum((faker_lines(locale, 5000, args.seed) for locale in ("de_DE", "es_ES", "it_IT")), [])
    for name, lines in (("english", english), ("french", french), ("mixed", mixed)):
        rng.shuffle(lines)
        (args.out / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}.txt: {len(lines)} lines")
    (args.out / "SOURCES.md").write_text(__doc__, encoding="utf-8")


if __name__ == "__main__":
    main()
