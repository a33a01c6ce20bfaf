"""tf-crnn serve over real HTTP on 127.0.0.1: the API, every refusal, the queue, a real browser."""

import io
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tf_crnn.data.segmentation import installed
from tf_crnn.reading.model import PredictionModel
from tf_crnn.serve import Limits, create_app

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(model: str, limits: Limits | None = None, api_key: str | None = None, segmenter: str | None = "tesseract"):
    """A uvicorn server on 127.0.0.1 in a thread; yields ``(base URL, app)``."""
    import uvicorn

    app = create_app(model, limits, api_key, segmenter if segmenter is None or installed(segmenter) else None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def eval_images(digits_data, n: int) -> list[Path]:
    return sorted((Path(digits_data["eval"]).parent / "images").glob("eval_*.png"))[:n]


def upload(paths) -> list:
    return [("images", (p.name, p.read_bytes(), "image/png")) for p in paths]


@pytest.fixture(scope="module")
def server(trained):
    params, _ = trained
    limits = Limits(
        max_images=4, max_request_bytes=300_000, max_image_side=2000, max_request_pixels=100_000, queue_size=8
    )
    with running(params.output_model_dir, limits) as (url, app):
        yield url


def test_recognize_reads_as_the_export_with_confidences_and_spans(server, trained, digits_data):
    params, _ = trained
    paths = eval_images(digits_data, 3)
    expected = PredictionModel(params.output_model_dir).predict([str(p) for p in paths])
    response = httpx.post(f"{server}/v1/recognize", files=upload(paths), timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["transcription"] for r in results] == expected
    assert [r["name"] for r in results] == [p.name for p in paths]
    for r in results:
        assert len(r["character_confidences"]) == len(r["transcription"]) == len(r["character_spans"])
        assert 0 < r["confidence"] <= 1
        width = Image.open(digits_data["eval"].parent / "images" / r["name"]).width
        assert all(0 <= a <= b <= width for a, b in r["character_spans"])
    # The model predicts CER: each line's, and the request's over them.
    predicted = response.json()["predicted_cer"]
    rates, lengths = [r["expected_cer"] for r in results], [len(r["transcription"]) for r in results]
    assert predicted["cer"] == pytest.approx(sum(a * b for a, b in zip(rates, lengths)) / sum(lengths), abs=1e-6)
    assert predicted["low"] <= predicted["cer"] <= predicted["high"]


def test_n_best_list(server, digits_data):
    response = httpx.post(f"{server}/v1/recognize?top_paths=3", files=upload(eval_images(digits_data, 1)), timeout=60)
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert len(result["alternatives"]) == 3 and result["alternatives"][0]["text"] == result["transcription"]


def test_recognize_within_allowed_characters_flags_what_does_not_fit(server, digits_data):
    paths = eval_images(digits_data, 4)
    response = httpx.post(f"{server}/v1/recognize", params={"allow": "01234"}, files=upload(paths), timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert all(set(r["transcription"]) <= set("01234") and isinstance(r["flagged"], bool) for r in results)
    free = httpx.post(f"{server}/v1/recognize", files=upload(paths), timeout=60).json()["results"]
    assert all("flagged" not in r for r in free)
    # Flagged lines are among those the model reads outside the set; those it reads within never are.
    outside = [bool(set(f["transcription"]) - set("01234")) for f in free]
    assert all(o for r, o in zip(results, outside) if r["flagged"]) and any(r["flagged"] for r in results)
    unknown = httpx.post(f"{server}/v1/recognize", params={"allow": "0x"}, files=upload(paths[:1]), timeout=60)
    assert unknown.status_code == 422 and "'x' not in the model's alphabet" in unknown.text
    huge = httpx.post(f"{server}/v1/recognize", params={"forbid": "9" * 5000}, files=upload(paths[:1]), timeout=60)
    assert huge.status_code == 422


def test_recognize_within_a_pattern_and_a_hostile_pattern_is_refused_in_time(server, digits_data):
    paths = eval_images(digits_data, 4)
    pattern = {"pattern": "[0-4]+"}
    response = httpx.post(f"{server}/v1/recognize", params=pattern, files=upload(paths), timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    free = httpx.post(f"{server}/v1/recognize", files=upload(paths), timeout=60).json()["results"]
    for r, f in zip(results, free):
        # A match is within the pattern; a line that cannot match keeps its reading, flagged.
        assert r["pattern_match"] == bool(set(r["transcription"]) <= set("01234")) and r["transcription"] != ""
        assert r["flagged"] or r["pattern_match"]
        if not r["pattern_match"]:
            assert r["transcription"] == f["transcription"]
    # Its automaton would take hours to build: refused within the server's seconds, twice, and the
    # server reads on meanwhile.
    for _ in range(2):
        started = time.monotonic()
        hostile = httpx.post(
            f"{server}/v1/recognize", params={"pattern": "(a|b)*a(a|b){22}"}, files=upload(paths[:1]), timeout=60
        )
        assert hostile.status_code == 422 and "too complex" in hostile.text
        assert time.monotonic() - started < 15
    broken = httpx.post(f"{server}/v1/recognize", params={"pattern": "[0-"}, files=upload(paths[:1]), timeout=60)
    assert broken.status_code == 422 and "cannot be parsed" in broken.text
    long = httpx.post(f"{server}/v1/recognize", params={"pattern": "1" * 5000}, files=upload(paths[:1]), timeout=60)
    assert long.status_code == 422
    assert httpx.post(f"{server}/v1/recognize", files=upload(paths[:1]), timeout=60).status_code == 200


def test_health_model_and_openapi(server):
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    info = httpx.get(f"{server}/v1/model").json()
    assert info["alphabet"] == list("0123456789") and info["input_height"] == 32
    assert info["limits"]["max_images"] == 4
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert {"/v1/recognize", "/v1/documents", "/v1/model", "/healthz"} <= set(paths)
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and 'id="drop"' in page.text


def test_every_refusal_is_a_4xx_naming_the_problem(server, digits_data):
    good = eval_images(digits_data, 5)
    cases = [
        ([("images", ("notes.txt", b"not an image at all", "text/plain"))], 415, "images[0] (notes.txt): not an image"),
        ([("images", ("empty.png", b"", "image/png"))], 415, "empty file"),
        (upload(good), 413, "5 images in one request; at most 4"),
        ([("images", ("huge.png", _png(3000, 20), "image/png"))], 413, "3000x20 pixels is over the limit"),
        (
            [("images", (f"{i}.png", _png(200, 200), "image/png")) for i in range(3)],
            413,
            "images[2] (2.png): the images of this request hold over 100000 pixels together",
        ),
        ([("images", ("big.png", b"\0" * 400_000, "image/png"))], 413, "Content Too Large"),
    ]
    for files, status, message in cases:
        response = httpx.post(f"{server}/v1/recognize", files=files, timeout=60)
        assert response.status_code == status, (message, response.text)
        assert message in response.text, response.text
    missing = httpx.post(f"{server}/v1/recognize", data={"x": "1"}, timeout=60)
    assert missing.status_code == 422
    bad_top = httpx.post(f"{server}/v1/recognize?top_paths=0", files=upload(good[:1]), timeout=60)
    assert bad_top.status_code == 422


def test_a_chunked_body_over_the_limit_is_refused(server):
    def chunks():  # a well-formed multipart start, then a file part that never ends
        yield b'--x\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        for _ in range(40):
            yield b"\0" * 10_000

    response = httpx.post(
        f"{server}/v1/recognize", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert response.status_code == 413


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, "PNG")
    return buffer.getvalue()


def test_api_key(trained, digits_data):
    params, _ = trained
    with running(params.output_model_dir, api_key="s3cret") as (url, _):
        files = upload(eval_images(digits_data, 1))
        assert httpx.post(f"{url}/v1/recognize", files=files, timeout=60).status_code == 401
        assert httpx.get(f"{url}/v1/model", headers={"X-API-Key": "wrong"}).status_code == 401
        assert httpx.get(f"{url}/v1/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        ok = httpx.post(f"{url}/v1/recognize", files=files, headers={"X-API-Key": "s3cret"}, timeout=60)
        assert ok.status_code == 200
        assert httpx.get(f"{url}/healthz").status_code == 200  # probes need no key
        # A key with bytes outside ASCII is a wrong key (401), not a server error.
        assert httpx.get(f"{url}/v1/model", headers={"X-API-Key": "s3cr\u00e9t".encode()}).status_code == 401


def test_full_queue_answers_503_with_retry_after_at_once(trained, digits_data, monkeypatch):
    from tf_crnn.reading import files as reading_files

    params, _ = trained
    release, entered = threading.Event(), threading.Event()
    real = reading_files.predict_files

    def slow(*args, **kwargs):
        entered.set()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(reading_files, "predict_files", slow)
    files = upload(eval_images(digits_data, 1))
    answers = {}
    with running(params.output_model_dir, Limits(queue_size=1, batch_size=1, readers=1)) as (url, app):

        def post(key):
            answers[key] = httpx.post(f"{url}/v1/recognize", files=files, timeout=60)

        first = threading.Thread(target=post, args=("first",))
        first.start()
        assert entered.wait(30)  # the reader holds the first request
        second = threading.Thread(target=post, args=("second",))
        second.start()
        deadline = time.monotonic() + 30
        while app.state.reader.queue.qsize() < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        start = time.monotonic()
        third = httpx.post(f"{url}/v1/recognize", files=files, timeout=60)
        assert third.status_code == 503 and third.headers["Retry-After"] == "1"
        assert time.monotonic() - start < 5
        release.set()
        first.join(60)
        second.join(60)
    assert answers["first"].status_code == 200 and answers["second"].status_code == 200


def test_document_endpoint_returns_the_document_recognised(server, trained, tmp_path):
    from test_documents import alto_xml, draw_page

    truth = draw_page(tmp_path / "page.png")
    xml = alto_xml("page.png", truth).encode()
    files = [("document", ("will.xml", xml, "application/xml")), ("image", ("scan.png", (tmp_path / "page.png").read_bytes(), "image/png"))]  # fmt: skip
    response = httpx.post(f"{server}/v1/documents", files=files, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "alto" and [line["id"] for line in body["lines"]] == list(truth)
    assert "<String" in body["xml"] and "WC=" in body["xml"]
    bad = httpx.post(
        f"{server}/v1/documents",
        files=[("document", ("x.xml", b"<nope/>", "application/xml")), files[1]],
        timeout=60,
    )
    assert bad.status_code == 422 and "x.xml" in bad.json()["detail"]
    # The page read is always the image sent: not a server file the document names, and also
    # when the document names none.
    blank = Image.new("L", (520, 220), 255)
    blank.save(tmp_path / "blank.png")
    texts = {line["id"]: line["text"] for line in body["lines"]}
    for name in (str(tmp_path / "blank.png"), "../../blank.png", ""):
        sent = [("document", ("w.xml", alto_xml(name, truth).encode(), "application/xml")), files[1]]
        again = httpx.post(f"{server}/v1/documents", files=sent, timeout=60)
        assert again.status_code == 200, (name, again.text)
        assert {line["id"]: line["text"] for line in again.json()["lines"]} == texts, name


@pytest.mark.skipif(not installed("tesseract"), reason="the segment extra (make test installs it)")
def test_a_bare_page_comes_back_as_its_lines_with_their_polygons(server, trained, tmp_path):
    from test_segmentation import TEXTS, draw_page

    boxes = draw_page(tmp_path / "scan.png")
    files = [("image", ("scan.png", (tmp_path / "scan.png").read_bytes(), "image/png"))]
    response = httpx.post(f"{server}/v1/pages", files=files, data={"kind": "page"}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["segmenter"] == "tesseract" and (body["width"], body["height"]) == (420, 300)
    assert body["kind"] == "page" and "<PcGts" in body["xml"] and len(body["lines"]) == len(TEXTS)
    for line, (x0, y0, x1, y1) in zip(body["lines"], boxes):  # in reading order, each around its ink
        xs, ys = [x for x, _ in line["polygon"]], [y for _, y in line["polygon"]]
        assert min(xs) < x0 < x1 < max(xs) and min(ys) < y0 < y1 < max(ys)
        assert 0 <= line["confidence"] <= 1 and len(line["character_confidences"]) == len(line["text"])
    assert 0 <= body["predicted_cer"]["cer"] <= 1
    bad = httpx.post(f"{server}/v1/pages", files=[("image", ("x.png", b"nope", "image/png"))], timeout=60)
    assert bad.status_code == 415 and "x.png" in bad.json()["detail"]
    with running(trained[0].output_model_dir, segmenter=None) as (url, _):
        refused = httpx.post(f"{url}/v1/pages", files=files, timeout=60)
    assert refused.status_code == 501 and "no segmenter" in refused.json()["detail"]


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver: make install-dev")
def test_page_in_a_real_browser(server, trained, digits_data, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    params, _ = trained
    image = eval_images(digits_data, 1)[0]
    expected = PredictionModel(params.output_model_dir).predict(str(image))
    with chrome() as driver:
        driver.get(server + "/")
        review = driver.find_element(By.ID, "review")
        review.clear()
        review.send_keys("1")  # every line is under 1: the line is marked for review
        driver.find_element(By.ID, "files").send_keys(str(image))
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .transcription"))
        assert "to review" in driver.find_element(By.CSS_SELECTOR, "#results .result.review .badge").text
        shown = driver.find_element(By.CSS_SELECTOR, "#results .transcription").text
        assert shown == expected
        spans = driver.find_elements(By.CSS_SELECTOR, "#results .transcription span")
        assert len(spans) == len(expected) and all("confidence" in s.get_attribute("title") for s in spans)
        assert "expected CER" in driver.find_element(By.CSS_SELECTOR, "#results .meta").text
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert Image.open(tmp_path / "page.png").size[0] > 0


@contextmanager
def chrome():
    """Debian's chromium, headless, driven by its chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver: make install-dev")
@pytest.mark.skipif(not installed("tesseract"), reason="the segment extra (make test installs it)")
def test_a_page_dropped_in_the_browser_shows_its_lines_on_it(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from test_segmentation import TEXTS, draw_page

    draw_page(tmp_path / "scan.png")
    with chrome() as driver:
        driver.get(server + "/")
        driver.find_element(By.ID, "pages").click()
        driver.find_element(By.ID, "files").send_keys(str(tmp_path / "scan.png"))
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .page canvas"))
        assert "4 lines found by tesseract" in driver.find_element(By.CSS_SELECTOR, "#results .page .name").text
        lines = driver.find_elements(By.CSS_SELECTOR, "#results .page .transcription")
        numbers = [line.find_element(By.CSS_SELECTOR, ".number").text for line in lines]
        assert numbers == [str(i + 1) for i in range(len(TEXTS))]
        canvas = driver.find_element(By.CSS_SELECTOR, "#results .page canvas")
        before = canvas.screenshot_as_png
        # The polygons are drawn on the page; pointing at a line fills its own.
        from selenium.webdriver import ActionChains

        ActionChains(driver).move_to_element(lines[1]).perform()
        assert canvas.screenshot_as_png != before
        # The page is grey; the outlines are coloured: a line's worth of them at least, per line.
        drawn = np.asarray(Image.open(io.BytesIO(before)).convert("RGB")).astype(int)
        coloured = (np.abs(drawn[..., 0] - drawn[..., 2]) > 60).sum()
        assert coloured > len(TEXTS) * 100, coloured
        driver.save_screenshot(str(tmp_path / "browser.png"))
        assert Image.open(tmp_path / "browser.png").size[0] > 0


def test_tensorflow_serving_request_of_the_readme(trained, digits_data, tmp_path):
    """The README's TF Serving layout and REST body, fed to the signature as TF Serving feeds it
    (base64 decoded into the ``images`` string tensor), in a process that never imports tf_crnn."""
    import base64
    import json
    import subprocess
    import sys

    from click.testing import CliRunner

    from tf_crnn.cli import main

    params, _ = trained
    target = tmp_path / "models" / "crnn" / "1"
    result = CliRunner().invoke(main, ["export", params.output_model_dir, "--format", "savedmodel", "-o", str(target)])
    assert result.exit_code == 0, result.output
    image = eval_images(digits_data, 1)[0]
    body = {"signature_name": "serving_default", "inputs": {"images": [{"b64": base64.b64encode(image.read_bytes()).decode()}]}}  # fmt: skip
    (tmp_path / "body.json").write_text(json.dumps(body))
    code = (
        "import base64, json, sys, tensorflow as tf\n"
        "body = json.load(open(sys.argv[2]))\n"
        "images = [base64.b64decode(x['b64']) for x in body['inputs']['images']]\n"
        "out = tf.saved_model.load(sys.argv[1]).signatures[body['signature_name']](images=tf.constant(images))\n"
        "assert 'tf_crnn' not in sys.modules\n"
        "print(json.dumps({'transcriptions': [t.decode() for t in out['transcriptions'].numpy()]}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(target), str(tmp_path / "body.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["transcriptions"] == [PredictionModel(params.output_model_dir).predict(str(image))]
