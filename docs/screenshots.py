"""Takes the README's screenshots with headless Chromium (Debian's chromium and chromium-driver).

    python docs/screenshots.py --model builtin:printed-latin --images tf_crnn/models/printed-latin/samples/*.png \\
        --report runs/my_model/report/report.html

Writes ``docs/images/serve.png`` (the ``tf-crnn serve`` page after reading the images), with
``--report`` ``docs/images/report.png`` (the top of the report page), and with ``--page IMAGE``
``docs/images/serve-page.jpg`` (a page image read with "whole pages" ticked, by ``--page-model``
with ``--segmenter``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).parent / "images"


def browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


@contextlib.contextmanager
def serving(model: str, *options: str):
    """``tf-crnn serve MODEL`` on a free port of 127.0.0.1, up (the load benchmark's own start);
    yields the page's URL."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from serve_load import started_server

    with started_server(model, *options) as server:
        yield server.url + "/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:printed-latin")
    parser.add_argument("--images", nargs="+", required=True)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--page", type=Path, help="a page image for serve-page.jpg")
    parser.add_argument("--page-model", default="builtin:handwriting-fr")
    parser.add_argument("--segmenter", default="auto")
    args = parser.parse_args()

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with serving(args.model) as url:
        driver = browser(1000, 760)
        try:
            driver.get(url)
            driver.find_element(By.ID, "files").send_keys("\n".join(str(Path(p).resolve()) for p in args.images))
            WebDriverWait(driver, 120).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result")) == len(args.images)
            )
            driver.save_screenshot(str(DOCS / "serve.png"))
            print("Wrote", DOCS / "serve.png")
            for item in driver.find_elements(By.CSS_SELECTOR, "#results .transcription"):
                print("  shown:", item.text)
        finally:
            driver.quit()
    if args.page:
        from PIL import Image
        from selenium.webdriver import ActionChains

        with serving(args.page_model, "--segmenter", args.segmenter) as url:
            driver = browser(1000, 1400)
            try:
                driver.get(url)
                driver.find_element(By.ID, "pages").click()
                driver.find_element(By.ID, "files").send_keys(str(args.page.resolve()))
                WebDriverWait(driver, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .page canvas"))
                lines = driver.find_elements(By.CSS_SELECTOR, "#results .page .transcription")
                ActionChains(driver).move_to_element(lines[min(2, len(lines) - 1)]).perform()
                driver.execute_script("window.scrollTo(0, 330)")
                # JPEG: a page's scan is a photograph, ten times the size as PNG.
                shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
                shot.save(DOCS / "serve-page.jpg", quality=80, optimize=True)
                print("Wrote", DOCS / "serve-page.jpg", f"({len(lines)} lines)")
            finally:
                driver.quit()
    if args.report:
        driver = browser(1100, 1500)
        try:
            driver.get(args.report.resolve().as_uri())
            driver.save_screenshot(str(DOCS / "report.png"))
            print("Wrote", DOCS / "report.png")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
