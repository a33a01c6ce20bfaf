"""A stand-in for the IAM server on 127.0.0.1: form login with a session cookie (or HTTP
basic auth), archives in IAM's layout, HTTP Range, and faults on request.

    python tests/iam_server.py [--port 8000] [--drop-after N]   # serves made-up archives until Ctrl-C
"""

from __future__ import annotations

import contextlib
import io
import random
import secrets
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from tf_crnn.datasets.synthetic import render_line

USER, PASSWORD = "reader@example.org", "s3cret"

# (line id, segmentation flag, transcription with | between words) per split
LINES = {
    "trainset": [
        ("a01-000u-00", "ok", "A|MOVE|to|stop|Mr.|Gaitskell"),
        ("a01-000u-01", "err", "from|nominating|any|more"),
        ("a01-000u-02", "ok", "Labour|life|Peers|is|to|be"),
        ("a01-003-00", "ok", "made|at|a|meeting|of|Labour"),
    ],
    "validationset1": [("b02-010-00", "ok", "M|Ps|tomorrow|.")],
    "validationset2": [("c03-007-00", "err", "Though|they|may|gather")],
    "testset": [("d04-012-00", "ok", "some|Left-wing|support|,")],
}


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_archives(lines: dict = LINES, seed: int = 0) -> dict[str, bytes]:
    """``{url path: bytes}`` of lines.tgz, ascii.tgz, xml.tgz and the split zip."""
    rng = random.Random(seed)
    images, records = {}, ["#--- lines.txt ---", "# format: a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop"]
    for split_lines in lines.values():
        for line_id, flag, text in split_lines:
            form = line_id.rsplit("-", 1)[0]
            png = io.BytesIO()
            render_line(text.replace("|", " "), rng, font_size=20).save(png, format="PNG")
            images[f"{form.split('-')[0]}/{form}/{line_id}.png"] = png.getvalue()
            records.append(f"{line_id} {flag} 154 19 408 746 1661 89 {text}")
    split_zip = io.BytesIO()
    with zipfile.ZipFile(split_zip, "w") as z:
        for split, split_lines in lines.items():
            z.writestr(f"{split}.txt", "".join(f"{line_id}\n" for line_id, _, _ in split_lines))
    forms = {line_id.rsplit("-", 1)[0] for s in lines.values() for line_id, _, _ in s}
    return {
        "/DBs/iamDB/data/lines.tgz": _tar(images),
        "/DBs/iamDB/data/ascii.tgz": _tar({"lines.txt": ("\n".join(records) + "\n").encode()}),
        "/DBs/iamDB/data/xml.tgz": _tar({f"{f}.xml": b"<form/>" for f in sorted(forms)}),
        "/static/zip/largeWriterIndependentTextLineRecognitionTask.zip": split_zip.getvalue(),
    }


class IamServer:
    """Serves ``files``; records requests. Faults: ``drop_after[path] = n`` sends the full
    Content-Length but closes after n bytes (once per entry); ``corrupt`` paths get their
    second half zeroed."""

    def __init__(self, files: dict[str, bytes], auth: str = "form"):
        self.files = files
        self.auth = auth
        self.sessions: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.drop_after: dict[str, int] = {}
        self.corrupt: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                server.requests.append(("POST", self.path, None))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                if self.path != "/login" or server.auth != "form":
                    return self._send(404, b"not found", "text/plain")
                if form.get("email") == USER and form.get("password") == PASSWORD:
                    token = secrets.token_hex(8)
                    server.sessions.add(token)
                    self.send_response(302)
                    self.send_header("Set-Cookie", f"session={token}; Path=/")
                    self.send_header("Location", "/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:  # as the real site: the login page again, status 200
                    self._send(200, b"<html><form>wrong e-mail or password</form></html>", "text/html")

            def do_GET(self):
                server.requests.append(("GET", self.path, self.headers.get("Range")))
                if self.path in ("/", "/login"):
                    return self._send(200, b"<html><form action='/login'></form></html>", "text/html")
                if self.path not in server.files:
                    return self._send(404, b"<html>not found</html>", "text/html")
                if not self._authorised():
                    if server.auth == "basic":
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="iam"')
                        self.send_header("Content-Length", "0")
                        return self.end_headers()
                    self.send_response(302)
                    self.send_header("Location", "/login")
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                data = server.files[self.path]
                if self.path in server.corrupt:
                    data = data[: len(data) // 2] + bytes(len(data) - len(data) // 2)
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(data):
                        return self._send(416, b"", "text/plain")
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = server.drop_after.pop(self.path, None)
                self.wfile.write(data[start:] if cut is None else data[start : start + cut])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

            def _authorised(self) -> bool:
                if server.auth == "basic":
                    import base64

                    expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                    return self.headers.get("Authorization") == f"Basic {expected}"
                cookies = dict(
                    c.strip().split("=", 1) for c in (self.headers.get("Cookie") or "").split(";") if "=" in c
                )
                return cookies.get("session") in server.sessions

            def _send(self, status: int, body: bytes, content_type: str):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def data_requests(self) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[1] in self.files]

    @contextlib.contextmanager
    def running(self):
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


if __name__ == "__main__":
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--drop-after", type=int, help="close the first lines.tgz answer after N bytes")
    args = parser.parse_args()
    server = IamServer(make_archives())
    if args.drop_after is not None:
        server.drop_after["/DBs/iamDB/data/lines.tgz"] = args.drop_after
    server.httpd.server_close()
    server.httpd = ThreadingHTTPServer(("127.0.0.1", args.port), server.httpd.RequestHandlerClass)
    with server.running():
        print(f"Serving made-up IAM archives on http://127.0.0.1:{args.port} (user {USER}, password {PASSWORD})")
        while True:
            time.sleep(3600)
