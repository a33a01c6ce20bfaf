"""Gathers the fonts the base models train on, from Debian's ``fonts-*`` packages and the npm
registry's ``@fontsource/*`` packages, into one folder with a manifest.

    python benchmarks/builtin/fonts.py ~/fonts            # apt-get install + npm pack, then convert
    tf-crnn synth ~/corpus/printed --fonts ~/fonts/printed ...

Writes ``OUT/printed/`` and ``OUT/handwriting/`` (TrueType files; the npm packages' WOFF files are
converted with fontTools) and ``OUT/fonts.csv`` (file, family, kind, package, version, licence),
the manifest that ships with each model card. Reserved families (``tf_crnn.data.fonts.RESERVED``: the
held-out checks use them) are neither installed nor copied; ``tf-crnn synth`` refuses them again.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tf_crnn.data.fonts import font_family, is_reserved  # noqa: E402

DEBIAN_PRINTED = (
    "fonts-liberation2 fonts-crosextra-caladea fonts-crosextra-carlito fonts-croscore fonts-ebgaramond "
    "fonts-linuxlibertine fonts-cmu fonts-lmodern fonts-oldstandard fonts-sil-gentiumplus fonts-sil-charis "
    "fonts-sil-andika fonts-sil-doulos fonts-stix fonts-vollkorn fonts-cardo fonts-adf-accanthis "
    "fonts-adf-baskervald fonts-adf-berenis fonts-adf-gillius fonts-adf-irianis fonts-adf-libris "
    "fonts-adf-oldania fonts-adf-romande fonts-adf-switzera fonts-adf-tribun "
    "fonts-adf-universalis fonts-adf-verana fonts-goudybookletter fonts-century-catalogue fonts-fanwood "
    "fonts-prociono fonts-levien-museum fonts-quattrocento fonts-paratype fonts-open-sans "
    "fonts-roboto-unhinted fonts-roboto-slab fonts-lato fonts-inter fonts-dejavu-extra fonts-courier-prime "
    "fonts-gnutypewriter fonts-go fonts-yrsa-rasa fonts-elstob fonts-averia-serif-gwf fonts-cabin fonts-karla "
    "fonts-clear-sans fonts-comic-neue fonts-hack fonts-jetbrains-mono fonts-oxygen fonts-gfs-didot "
    "fonts-tuffy fonts-essays1743 fonts-ocr-b fonts-b612 fonts-junction fonts-national-park fonts-gamaliel "
    "fonts-arapey fonts-campania fonts-lindenhill"
).split()
DEBIAN_HANDWRITING = (
    "fonts-dkg-handwriting fonts-kristi fonts-femkeklaver fonts-ecolier-court fonts-rufscript fonts-isabella".split()
)
NPM_PRINTED = (
    "merriweather lora libre-baskerville crimson-text crimson-pro source-serif-4 pt-serif spectral alegreya "
    "literata noto-serif bitter zilla-slab arvo domine cormorant-garamond libre-caslon-text sorts-mill-goudy "
    "im-fell-english playfair-display besley newsreader gelasio rasa volkhov frank-ruhl-libre gentium-book-plus "
    "stix-two-text faustina petrona brawler unna special-elite ibm-plex-serif ibm-plex-sans ibm-plex-mono "
    "montserrat raleway nunito work-sans poppins source-sans-3 fira-sans noto-sans pt-sans ubuntu "
    "titillium-web libre-franklin archivo barlow rubik mulish roboto-mono space-mono dm-serif-text "
    "old-standard-tt instrument-serif fraunces cormorant prata alice adamina aleo hind arsenal josefin-sans "
    "cousine tinos arimo overpass chivo asap signika encode-sans martel halant headland-one ovo lustria "
    "cutive cutive-mono anonymous-pro courier-prime mate ledger rokkitt kreon trocchi gupter lusitana "
    "della-respira fanwood-text linden-hill goudy-bookletter-1911 junge quattrocento-sans sanchez copse"
).split()
NPM_HANDWRITING = (
    "caveat kalam great-vibes indie-flower bad-script sacramento cedarville-cursive architects-daughter "
    "courgette covered-by-your-grace satisfy patrick-hand shadows-into-light corinthia montecarlo oooh-baby "
    "alex-brush birthstone allura pinyon-script annie-use-your-telescope reenie-beanie gloria-hallelujah "
    "cookie handlee sue-ellen-francisco swanky-and-moo-moo yellowtail gochi-hand parisienne schoolbell "
    "marck-script tangerine ms-madi homemade-apple short-stack whisper licorice the-girl-next-door "
    "herr-von-muellerhoff neucha monsieur-la-doulaise mr-de-haviland ephesis rochester italianno condiment "
    "mansalva delius la-belle-aurore dawning-of-a-new-day zeyada nothing-you-could-do waiting-for-the-sunrise "
    "over-the-rainbow just-another-hand mrs-saint-delafield meddon bilbo qwigley rouge-script "
    "petit-formal-script playwrite-fr-trad playwrite-fr-moderne send-flowers mea-culpa carattere water-brush "
    "comforter updock lovers-quarrel imperial-script meow-script love-light island-moments grey-qo "
    "vujahday-script estonia ballet the-nautigal festive engagement euphoria-script niconne norican "
    "league-script miss-fajardose mrs-sheppards dr-sugiyama jim-nightshade sassy-frass ruthie felipa "
    "fondamento clicker-script calligraffitti crafty-girls loved-by-the-king coming-soon mynerve "
    "nanum-pen-script damion kristi seaweed-script mr-dafoe mr-bedfort lovers-quarrel butterfly-kids "
    "sofia tillana playwrite-gb-s playwrite-be-vlg playwrite-de-grund playwrite-it-moderna "
    "playwrite-us-trad playwrite-ca playwrite-au-sa nanum-brush-script gaegu itim sriracha vibur "
    "delicious-handrawn dekko kavivanar edu-sa-beginner edu-vic-wa-nt-beginner edu-nsw-act-foundation "
    "edu-qld-beginner edu-tas-beginner shalimar puppies-play lavishly-yours ingrid-darling "
    "hurricane moon-dance ole stalemate fuggles caramel inspiration beau-rivage the-nautigal"
).split()
NOT_TEXT = re.compile(
    r"Math|Dings|Initials|Keyboard|Symbol|Caps|Smallcaps|Tamil|PHON|BABEL|Ellhnikh|EMERITA", re.IGNORECASE
)
"""Families that do not set running text in the Latin alphabet (symbols, small capitals, initials)."""
NPM_WEIGHTS = {"printed": ("400-normal", "700-normal", "400-italic"), "handwriting": ("400-normal",)}


def _licence_of_debian(package: str) -> str:
    copyright = Path("/usr/share/doc", package, "copyright")
    text = copyright.read_text(errors="replace") if copyright.is_file() else ""
    found = re.findall(r"^License:\s*(\S.*)$", text, re.MULTILINE)
    return found[0].strip() if found else "see /usr/share/doc/" + package


def debian_fonts(packages: list[str], kind: str, out: Path, rows: list[dict]) -> None:
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True)
    for package in packages:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
        version = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
        ).stdout
        for line in sorted(set(listing.split())):
            path = Path(line)
            if path.suffix.lower() not in (".ttf", ".otf") or not path.is_file():
                continue
            family = font_family(path)
            if is_reserved(family) or NOT_TEXT.search(family):
                continue
            target = out / kind / f"{package}--{path.name}"
            target.write_bytes(path.read_bytes())
            rows.append(dict(file=f"{kind}/{target.name}", family=family, kind=kind, package=package,
                             version=version, licence=_licence_of_debian(package)))  # fmt: skip


def _npm_one(name: str, kind: str, out: Path) -> list[dict]:
    from fontTools.ttLib import TTFont

    if is_reserved(name.replace("-", " ")):
        return []
    done = subprocess.run(["npm", "pack", f"@fontsource/{name}", "--silent", "--pack-destination", str(out / "npm-tgz")],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        print(f"@fontsource/{name}: not in the registry, left out", file=sys.stderr)
        return []
    rows = []
    with tarfile.open(out / "npm-tgz" / done.stdout.strip().splitlines()[-1]) as tar:
        meta = json.load(tar.extractfile("package/package.json"))
        for weight in NPM_WEIGHTS[kind]:
            member = f"package/files/{name}-latin-{weight}.woff"
            try:
                data = tar.extractfile(member).read()
            except KeyError:
                continue
            font = TTFont(io.BytesIO(data))
            font.flavor = None
            target = out / kind / f"npm-{name}-{weight}.ttf"
            font.save(target)
            family = font_family(target)
            if is_reserved(family):
                target.unlink()
                continue
            rows.append(dict(file=f"{kind}/{target.name}", family=family, kind=kind, package=f"@fontsource/{name}",
                             version=meta.get("version", ""), licence=meta.get("license", "")))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--no-apt", action="store_true", help="skip the Debian packages")
    args = parser.parse_args()
    for sub in ("printed", "handwriting", "npm-tgz"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    if not args.no_apt:
        debian_fonts(DEBIAN_PRINTED, "printed", args.out, rows)
        debian_fonts(DEBIAN_HANDWRITING, "handwriting", args.out, rows)
    jobs = [(n, "printed") for n in dict.fromkeys(NPM_PRINTED)] + [
        (n, "handwriting") for n in dict.fromkeys(NPM_HANDWRITING)
    ]
    with ThreadPoolExecutor(8) as pool:
        for found in pool.map(lambda job: _npm_one(job[0], job[1], args.out), jobs):
            rows.extend(found)
    with open(args.out / "fonts.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "family", "kind", "package", "version", "licence"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["file"]))
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("printed", "handwriting")}
    families = {k: len({r["family"] for r in rows if r["kind"] == k}) for k in kinds}
    print(f"{len(rows)} font files in {args.out}: {kinds}, families {families}")


if __name__ == "__main__":
    main()
