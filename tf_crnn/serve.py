"""``tf-crnn serve``: a web page to try a model, and a JSON API, on FastAPI and uvicorn.

- ``GET /``: a page where one drops line images (or an ALTO/PAGE file with its page image)
  and sees each transcription, its characters shaded by confidence, and the alternatives.
- ``POST /v1/recognize``: images as multipart fields named ``images``; per image the
  transcription, confidence, per-character confidences and horizontal spans (pixels of the
  image) and, with ``top_paths > 1``, the n-best list (CTC beam search).
- ``POST /v1/documents``: an ALTO or PAGE file (``document``) with its page image (``image``);
  the document written back recognised, and its lines.
- ``POST /v1/pages``: a bare page image (``image``): its lines found by the server's segmenter
  (``tf-crnn serve --segmenter``), read, with their polygons, and the page as ALTO or PAGE.
- ``GET /healthz``, ``GET /v1/model`` (alphabet, input height, version), ``GET /openapi.json``.

Concurrent requests are read together: a reader thread (two by default, so that one batch is
decoded while the next is in the network) takes the waiting requests off a bounded queue and
reads their images as one batch. When the queue is full the answer is ``503`` with
``Retry-After``, at once: a client is never left hanging. Requests are bounded in bytes,
images per request and pixels per image; what breaks a bound, or is not an image, is a
``4xx`` naming it (``413 Content Too Large`` for a body over the limit, by its
Content-Length or as its chunks arrive: FastAPI's ``max_body_size``). The server binds to 127.0.0.1 unless told otherwise; with an API key,
``/v1/*`` asks for it (``X-API-Key`` or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import dataclasses
import functools
import io
import ipaddress
import logging
import queue
import re
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Query, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image

from tf_crnn import __version__
from tf_crnn.artifacts import METADATA_FILENAME
from tf_crnn.data.documents import DocumentError, read_document
from tf_crnn.data.images import upright_size
from tf_crnn.data.segmentation import SegmentingProcess, choose_segmenter
from tf_crnn.errors import MissingExtraError
from tf_crnn.network.constraints import Constraint
from tf_crnn.network.patterns import MAX_PATTERN_LENGTH
from tf_crnn.reading import files as reading_files
from tf_crnn.reading.documents import predict_documents, predict_pages
from tf_crnn.reading.model import PredictionModel

logger = logging.getLogger(__name__)

IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}


@dataclass
class Limits:
    """What one request may hold, and how requests are batched."""

    max_request_bytes: int = 20 * 2**20
    max_images: int = 32
    max_image_side: int = 10_000
    max_image_pixels: int = 40_000_000
    max_request_pixels: int = 64_000_000
    """Pixels of all the images of one request together (each image's first frame)."""
    queue_size: int = 64
    """Requests waiting to be read; one more is answered 503 with Retry-After."""
    batch_size: int = 64
    """Images read together at most."""
    batch_wait_ms: float = 2.0
    """How long a reader waits for more requests to join a batch."""
    readers: int = 2
    """Batches read at once: while one is in the network (which releases Python's lock), another
    is decoded, aligned and answered."""
    retry_after_s: int = 1


class Busy(Exception):
    """The queue of waiting requests is full."""


class BadUpload(ValueError):
    """An upload that cannot be read; the message names it. ``status``: 415 for what is not a
    readable image, 413 for one over the limits."""

    def __init__(self, message: str, status: int = 415):
        super().__init__(message)
        self.status = status


@dataclass
class _Job:
    paths: list[str]
    top_paths: int
    future: concurrent.futures.Future
    pixels: int = 0
    constraint: Constraint | None = None

    @property
    def reading(self) -> tuple:
        """How its lines are read: jobs read alike share batches."""
        return self.top_paths, self.constraint.description if self.constraint is not None else None


class BatchingReader:
    """Reads the images of concurrent requests in shared batches, on ``limits.readers`` threads
    of its own.

    Requests with the same ``top_paths`` are batched together (greedy decoding, or beam search
    for an n-best list); the model's own batching (``predict_files``) sorts each batch by width.
    """

    def __init__(self, model, limits: Limits):
        self.model = model
        self.limits = limits
        self.queue: queue.Queue[_Job | None] = queue.Queue(maxsize=limits.queue_size)
        self._threads = [
            threading.Thread(target=self._run, name=f"tf-crnn-reader-{i}", daemon=True) for i in range(limits.readers)
        ]
        for thread in self._threads:
            thread.start()

    def alive(self) -> bool:
        """Whether every reader thread runs."""
        return all(thread.is_alive() for thread in self._threads)

    def submit(
        self, paths: list[str], top_paths: int = 1, pixels: int = 0, constraint: Constraint | None = None
    ) -> concurrent.futures.Future:
        """Queues ``paths`` (``pixels``: theirs together), to read within ``constraint`` if given;
        the future's result is ``(results, skipped)`` of ``predict_files``.

        Raises:
            Busy: the queue is full.
        """
        job = _Job(paths, top_paths, concurrent.futures.Future(), pixels, constraint)
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise Busy from None
        return job.future

    def close(self) -> None:
        for _ in self._threads:
            self.queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def _next_batch(self, first: _Job) -> tuple[list[_Job], list[_Job]]:
        """``first`` and the jobs that join it within the wait; jobs that cannot join go back."""
        jobs, later = [first], []
        n_images = len(first.paths)
        deadline = time.monotonic() + self.limits.batch_wait_ms / 1000
        while n_images < self.limits.batch_size:
            try:
                job = self.queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                break
            if job is None or job.reading != first.reading:
                later.append(job)
                if job is None:
                    break
                continue
            jobs.append(job)
            n_images += len(job.paths)
        return jobs, later

    def _run(self) -> None:
        pending: list[_Job | None] = []
        while True:
            job = pending.pop(0) if pending else self.queue.get()
            if job is None:
                return
            jobs, later = self._next_batch(job)
            pending.extend(later)
            paths = [p for j in jobs for p in j.paths]
            top_paths = job.top_paths
            try:
                results, skipped = reading_files.predict_files(
                    self.model,
                    paths,
                    batch_size=self.limits.batch_size,
                    top_paths=top_paths if top_paths > 1 else None,
                    details=True,
                    constraint=job.constraint,
                )
            except Exception as error:  # noqa: BLE001 - every waiting request gets the error, the thread lives on
                for j in jobs:
                    j.future.set_exception(error)
                continue
            finally:
                if sum(j.pixels for j in jobs) > RELEASE_AFTER_PIXELS:
                    release_memory()
            by_path = {r.path: r for r in results}
            reasons = dict(skipped)
            for j in jobs:
                j.future.set_result(
                    ([by_path[p] for p in j.paths if p in by_path], [(p, reasons[p]) for p in j.paths if p in reasons])
                )


MAX_CONSTRAINT = 1024
"""The longest ``allow`` or ``forbid`` a request may send, in characters."""
PATTERN_SECONDS = 2.0
"""How long a request's pattern may take to compile (in a child process, killed past it)."""
KNOWN_CONSTRAINTS = 256
"""Constraints (and refusals) kept compiled: a client that sends the same pattern again waits for nothing."""
REVIEW_BELOW = 0.5
"""The page's starting threshold under which a line is marked for review."""
RELEASE_AFTER_PIXELS = 4_000_000
"""Batches with more pixels give their memory back after reading (``release_memory``): cheap,
but not free, so small batches at high request rates skip it."""


def release_memory() -> None:
    """Hands the memory freed by a batch back to the system: glibc keeps freed blocks of a large
    image's decoding in its arenas, where the server's resident size would stay at its peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: its allocator decides
        pass


def check_image(data: bytes, name: str, limits: Limits) -> tuple[str, int]:
    """The file suffix of an uploaded image's format and its number of pixels, after checking
    it against ``limits``.

    Raises:
        BadUpload: not an image of a known format, or too large.
    """
    if not data:
        raise BadUpload(f"{name}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            kind = image.format
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise BadUpload(f"{name}: not an image ({error})") from None
    if kind not in IMAGE_FORMATS:
        raise BadUpload(f"{name}: {kind} images are not read; send PNG, JPEG, BMP, GIF or TIFF")
    if max(width, height) > limits.max_image_side or width * height > limits.max_image_pixels:
        raise BadUpload(
            f"{name}: {width}x{height} pixels is over the limit ({limits.max_image_side} px a side, "
            f"{limits.max_image_pixels} pixels); send one line of text per image",
            413,
        )
    return IMAGE_FORMATS[kind], width * height


def create_app(
    model_spec: str, limits: Limits | None = None, api_key: str | None = None, segmenter: str | None = "auto"
):
    """The FastAPI application serving ``model_spec`` (an export folder, an output_model_dir or
    ``builtin:NAME``); ``segmenter``: what finds the lines of the page images sent to
    ``/v1/pages`` (``segmentation.SEGMENTERS`` or ``auto``; None, or none installed: no pages)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    limits = limits or Limits()
    model = PredictionModel(model_spec, signature="filename")
    params = model.params
    reader = BatchingReader(model, limits)

    @functools.lru_cache(maxsize=KNOWN_CONSTRAINTS)
    def constraint_for(allow: str | None, forbid: str | None, pattern: str | None) -> Constraint | str:
        """The request's constraint, or why it is refused (kept too: a hostile pattern sent again
        costs nothing)."""
        try:
            return Constraint.from_characters(model.alphabet, allow, forbid, pattern, PATTERN_SECONDS)
        except ValueError as error:
            return re.sub(r"--(allow|forbid|pattern)\b", r"\1", str(error))  # the options' names, as parameters

    documents_lock = threading.Lock()
    segmenting: SegmentingProcess | None = None  # started at the first page, kept warm
    if segmenter is not None:
        try:
            segmenter = choose_segmenter(segmenter)
        except MissingExtraError as error:
            logger.warning("Page images will not be read (/v1/pages): %s", error)
            segmenter = None
    metadata_file = model.export_path / METADATA_FILENAME
    metadata = {}
    if metadata_file.is_file():
        import json

        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        reader.close()
        if segmenting is not None:
            segmenting.close()

    app = FastAPI(
        lifespan=lifespan,
        max_body_size=limits.max_request_bytes,  # 413 by Content-Length, or as chunks arrive
        title="tf_crnn",
        version=__version__,
        description="Text-line recognition with a CRNN: images in, transcriptions with confidences out.",
    )
    app.state.reader = reader

    def require_key(
        x_api_key: Annotated[str | None, Header()] = None, authorization: Annotated[str | None, Header()] = None
    ) -> None:
        if api_key is None:
            return
        given = x_api_key or (authorization[7:] if authorization and authorization.startswith("Bearer ") else None)
        # Bytes: compare_digest refuses str with characters outside ASCII (a header may hold any).
        if given is None or not secrets.compare_digest(given.encode("utf-8", "surrogateescape"), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key: send it as X-API-Key or Authorization: Bearer")

    async def read_uploads(files: list[UploadFile], folder: Path) -> tuple[list[tuple[str, str]], int]:
        if len(files) > limits.max_images:
            raise HTTPException(413, f"{len(files)} images in one request; at most {limits.max_images}")
        saved, pixels = [], 0
        for i, upload in enumerate(files):
            name = f"images[{i}] ({upload.filename or 'unnamed'})"
            data = await upload.read()
            suffix, size = check_image(data, name, limits)  # BadUpload: a 4xx from the app's handler
            pixels += size
            if pixels > limits.max_request_pixels:
                raise HTTPException(
                    413,
                    f"{name}: the images of this request hold over {limits.max_request_pixels} pixels together; "
                    "send fewer or smaller images per request",
                )
            path = folder / f"{i}{suffix}"
            path.write_bytes(data)
            saved.append((upload.filename or f"image {i}", str(path)))
        return saved, pixels

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        environment = Environment(loader=PackageLoader("tf_crnn", "templates"), autoescape=select_autoescape())
        return environment.get_template("serve.html.j2").render(
            model=model_spec, version=__version__, needs_key=api_key is not None, max_images=limits.max_images,
            calibrated=model.calibration is not None, review_below=REVIEW_BELOW, segmenter=segmenter,
        )  # fmt: skip

    @app.get("/healthz")
    def healthz():
        """Whether the server is up and its reader threads alive."""
        alive = reader.alive()
        return JSONResponse({"status": "ok" if alive else "reader stopped"}, status_code=200 if alive else 503)

    @app.get("/v1/model", dependencies=[Depends(require_key)])
    def model_info():
        """The model: its alphabet, input size, training figures, and the server's limits."""
        return {
            "model": model_spec,
            "version": __version__,
            "input_height": params.input_shape[0],
            "max_width": params.input_shape[1],
            "input_channels": params.input_channels,
            "alphabet": params.alphabet.alphabet_units,
            "validation_cer": metadata.get("val_cer"),
            "calibrated": model.calibration is not None,
            "segmenter": segmenter,
            "limits": asdict(limits),
        }

    @app.post("/v1/recognize", dependencies=[Depends(require_key)])
    async def recognize(
        images: Annotated[list[UploadFile], File(description="line images (PNG, JPEG, BMP, GIF, TIFF)")],
        top_paths: Annotated[int, Query(ge=1, le=10, description="alternatives per line (beam search above 1)")] = 1,
        allow: Annotated[str | None, Query(max_length=MAX_CONSTRAINT, description="read only these characters")] = None,
        forbid: Annotated[
            str | None, Query(max_length=MAX_CONSTRAINT, description="never read these characters")
        ] = None,
        pattern: Annotated[
            str | None,
            Query(
                max_length=MAX_PATTERN_LENGTH,
                description="a regular expression each reading must match, as a whole line (Python's syntax "
                "without flags or look-arounds)",
            ),
        ] = None,
    ):
        """Reads line images: transcription, confidence, character confidences and spans, n-best,
        each line's expected CER and the request's predicted CER where the model predicts them;
        with ``allow``/``forbid``, within those characters, and with ``pattern``, the most probable
        reading that matches it (``pattern_match`` says whether it does), each line ``flagged``
        where its best reading without them is far more probable or nothing matches. A pattern
        that does not compile within a few seconds is refused (422)."""
        constraint = None
        if allow is not None or forbid is not None or pattern is not None:
            constraint = await asyncio.to_thread(constraint_for, allow, forbid, pattern)
            if isinstance(constraint, str):
                raise HTTPException(422, constraint)
        with tempfile.TemporaryDirectory() as tmp:
            saved, pixels = await read_uploads(images, Path(tmp))
            try:
                future = reader.submit([path for _, path in saved], top_paths, pixels, constraint)
            except Busy:
                return JSONResponse(
                    {"detail": "the server is busy; try again shortly"},
                    status_code=503,
                    headers={"Retry-After": str(limits.retry_after_s)},
                )
            results, skipped = await asyncio.wrap_future(future)
        reasons = dict(skipped)
        for name, path in saved:
            if path in reasons:
                raise HTTPException(415, f"{name}: {reasons[path]}")
        answers = []
        for (name, _), result in zip(saved, results):
            answer = {k: v for k, v in result.as_dict().items() if k != "path"}
            answer["name"] = name
            answers.append(answer)
        reply = {"model": model_spec, "results": answers}
        if model.predicts_cer and results:
            predicted = model.calibration.predicted_cer(results)
            reply["predicted_cer"] = dataclasses.asdict(predicted)
        return reply

    @app.post("/v1/documents", dependencies=[Depends(require_key)])
    async def documents(
        document: Annotated[UploadFile, File(description="an ALTO or PAGE XML file")],
        image: Annotated[UploadFile, File(description="its page image")],
        glyphs: Annotated[bool, Form(description="also a box per character")] = False,
    ):
        """Reads every line of an ALTO or PAGE document and returns it written back recognised."""
        from starlette.concurrency import run_in_threadpool

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            xml = await document.read()
            data = await image.read()
            check_image(data, f"image ({image.filename})", limits)
            source = folder / "in" / "document.xml"
            source.parent.mkdir()
            source.write_bytes(xml)
            page_image = folder / "page-image"  # read as the image sent, whatever the document names
            page_image.write_bytes(data)
            try:
                read_document(source, page_image)
            except DocumentError as error:
                raise HTTPException(422, f"document ({document.filename}): {error}") from None

            def read():
                with documents_lock:
                    return predict_documents(
                        model, [source], folder / "out", glyphs=glyphs, page_images={source: page_image}
                    )

            written, skipped = await run_in_threadpool(read)
            if not written:
                raise HTTPException(
                    422, f"document ({document.filename}): {skipped[0][1] if skipped else 'unreadable'}"
                )
            recognised = read_document(written[0])
            return {
                "kind": recognised.kind,
                "xml": written[0].read_text(encoding="utf-8"),
                "lines": [{"id": line.id, "text": line.text} for line in recognised.lines],
                "skipped": [{"where": w, "reason": r} for w, r in skipped],
            }

    @app.post("/v1/pages", dependencies=[Depends(require_key)])
    async def pages(
        image: Annotated[UploadFile, File(description="a page image (PNG, JPEG, BMP, GIF, TIFF)")],
        kind: Annotated[Literal["alto", "page"], Form(description="the document returned")] = "alto",
    ):
        """Finds the lines of a bare page image with the server's segmenter and reads them: each
        line's text, confidence, polygon and baseline (page pixels, the page as EXIF turns it
        upright), in reading order, and the page as an ALTO or PAGE document."""
        from starlette.concurrency import run_in_threadpool

        if segmenter is None:
            raise HTTPException(
                501, "this server has no segmenter: pip install 'tf_crnn[segment]' (or kraken) and restart it"
            )
        data = await image.read()
        suffix, _ = check_image(data, f"image ({image.filename})", limits)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            page_image = folder / f"page{suffix}"
            page_image.write_bytes(data)
            readings = []

            def read():
                nonlocal segmenting
                with documents_lock:
                    if segmenting is None:
                        segmenting = SegmentingProcess(segmenter)
                    return predict_pages(
                        model, [page_image], folder / "out", segmenting, kind=kind, collect=readings,
                        summary=False,
                    )  # fmt: skip

            written, skipped, _ = await run_in_threadpool(read)
            if not written:
                raise HTTPException(422, f"image ({image.filename}): {skipped[0][1] if skipped else 'unreadable'}")
            document = read_document(written[0])
            by_id = {reading.path.rsplit(":", 1)[1]: reading for reading in readings}
            width, height = upright_size(page_image)
            lines = []
            for line in document.lines:
                answer = {"id": line.id, "text": line.text, "polygon": line.polygon, "baseline": line.baseline}
                if line.id in by_id:
                    reading = by_id[line.id]
                    answer.update(
                        confidence=reading.confidence,
                        character_confidences=reading.character_confidences,
                        expected_cer=reading.expected_cer,
                    )
                lines.append(answer)
            reply = {
                "segmenter": segmenter, "width": width, "height": height, "kind": document.kind,
                "lines": lines, "xml": written[0].read_text(encoding="utf-8"),
                "skipped": [{"where": w, "reason": r} for w, r in skipped],
            }  # fmt: skip
            if model.predicts_cer and readings:
                reply["predicted_cer"] = dataclasses.asdict(model.calibration.predicted_cer(readings))
            return reply

    @app.exception_handler(BadUpload)
    async def bad_upload(request, error):
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    return app


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the service on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    model_spec: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    limits: Limits | None = None,
    api_key=None,
    segmenter: str | None = "auto",
):
    """Runs the server until interrupted."""
    import uvicorn

    app = create_app(model_spec, limits, api_key, segmenter)
    if not is_loopback(host) and api_key is None:
        logger.warning("Serving on %s without an API key: anyone who reaches this port can use the model", host)
    logger.info(
        "Serving %s on http://%s:%d/ (API: /v1/recognize, /v1/documents, /v1/pages; OpenAPI: /openapi.json)",
        model_spec,
        host,
        port,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["BatchingReader", "Busy", "Limits", "check_image", "create_app", "is_loopback", "serve"]
