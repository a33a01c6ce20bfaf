"""Benchmark: the memory of ``tf-crnn serve`` under the largest requests its defaults allow.

Starts ``tf-crnn serve MODEL`` (its own process, 127.0.0.1, default limits), reads one small line
to warm it, then sends the worst requests the defaults let through, each several times, and
prints the server's resident memory (``/proc/PID/status``: VmRSS now, VmHWM the peak so far)
after each kind: one line image just under the per-image limit (40 megapixels, a few KiB of
PNG), and the request-pixel limit filled (64 megapixels over two images).

    python benchmarks/serve_memory.py --model builtin:printed-latin
"""

from __future__ import annotations

import argparse
import io
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import print_table  # noqa: E402
from serve_load import started_server  # noqa: E402


def status_mib(pid: int) -> dict[str, float]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


def line_image(width: int, height: int, text: str = "A line of text, very large") -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).text((width // 20, height // 3), text, fill=0, font=ImageFont.load_default(size=height // 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:printed-latin")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import httpx

    rows = []
    with started_server(args.model) as server:
        url = server.url
        small = line_image(600, 48)
        requests = [
            ("one small line (warm-up)", [small]),
            ("one 40-megapixel line image (7,999 x 5,000)", [line_image(7999, 5000)]),
            ("64 megapixels: 40 + 24 megapixels", [line_image(7999, 5000), line_image(6000, 4000)]),
            ("32 small lines", [small] * 32),
        ]
        for name, images in requests:
            statuses = []
            for _ in range(args.repeat):
                files = [("images", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
                statuses.append(httpx.post(f"{url}/v1/recognize", files=files, timeout=300).status_code)
            memory = status_mib(server.pid)
            size = sum(len(d) for d in images) / 1024
            rows.append([name, f"{size:,.0f} KiB", ",".join(map(str, sorted(set(statuses)))),
                         f"{memory['VmRSS']:,.0f}", f"{memory['VmHWM']:,.0f}"])  # fmt: skip
    print(f"tf-crnn serve {args.model}, default limits, each request sent {args.repeat} times")
    print_table(["request", "upload", "status", "RSS after (MiB)", "peak RSS so far (MiB)"], rows)


if __name__ == "__main__":
    main()
