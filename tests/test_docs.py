"""The documentation: the site builds with warnings as errors, its generated pages say what the
code says, and the README stays a short front page."""

import dataclasses
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    site = tmp_path / "site"
    run = subprocess.run(
        [Path(sys.executable).parent / "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    config_page = (site / "config" / "index.html").read_text(encoding="utf-8")
    from tf_crnn.config import Params

    for field in dataclasses.fields(Params):  # every key, generated from Params
        assert f"<code>{field.name}</code>" in config_page, field.name
    cli_page = (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert "--split-by" in cli_page and "--lm-order" in cli_page and "calibrate" in cli_page  # generated from --help
    results = (site / "results" / "index.html").read_text(encoding="utf-8")
    assert "How accurate is the printed preset" in results  # BENCHMARKS.md, the one copy


def test_the_readme_is_a_front_page_and_its_links_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    import re

    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_the_package_declares_the_licences_of_what_it_ships():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "GPL-3.0-or-later" in project["license"] and "CC-BY-4.0" in project["license"]
    assert "GNU GENERAL PUBLIC LICENSE" in (ROOT / "LICENSE").read_text()
    for card in (ROOT / "tf_crnn" / "models").glob("*/MODEL_CARD.md"):
        assert "## Licence" in card.read_text(encoding="utf-8"), card
