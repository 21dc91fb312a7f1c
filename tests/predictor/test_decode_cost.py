"""What decoding an image really takes, measured, against what the predictor charges its memory
budget for it before decoding (`imaging.decode_cost`): every accepted format, the modes they
decode into, progressive JPEG and WebP (whose decoders hold several copies). Each decode runs
in a fresh process whose resident memory is sampled while it decodes."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from support.servers import ROOT

WIDTH, HEIGHT = 4000, 2000  # 8 megapixels: large enough that the per-pixel costs dominate
MIB = 1024 * 1024

MEASURE = r"""
import ctypes, sys, threading, time
from predictor import imaging

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

data = sys.stdin.buffer.read()
ctypes.CDLL(None).malloc_trim(0)
start, peak, done = resident(), [0], threading.Event()

def watch():
    while not done.is_set():
        peak[0] = max(peak[0], resident())
        time.sleep(0.0005)

watcher = threading.Thread(target=watch)
watcher.start()
image = imaging.open_image(data, imaging.ImageLimits(max_bytes=1 << 30, max_pixels=1 << 30))
cost = imaging.decode_cost(image)
imaging.decode_opened(image)
done.set()
watcher.join()
print(max(peak[0], resident()) - start, cost)
"""


def picture(mode: str) -> Image.Image:
    """Blocks of noise: real entropy, yet small files."""
    bands = {"RGB": 3, "RGBA": 4, "LA": 2}.get(mode, 1)
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 200, (HEIGHT // 50, WIDTH // 50, bands), dtype=np.uint8)
    pixels = blocks.repeat(50, 0).repeat(50, 1)
    if mode == "I;16":
        return Image.fromarray(pixels[..., 0].astype(np.uint16) * 250)
    if mode == "P":
        return Image.fromarray(pixels[..., 0]).convert("P")
    return Image.fromarray(pixels.squeeze(), mode)


CASES = {
    "baseline JPEG": ("RGB", "JPEG", {}),
    "progressive 4:4:4 JPEG": ("RGB", "JPEG", {"progressive": True, "subsampling": 0}),
    "RGB PNG": ("RGB", "PNG", {}),
    "RGBA PNG": ("RGBA", "PNG", {}),
    "palette PNG": ("P", "PNG", {}),
    "grey + alpha PNG": ("LA", "PNG", {}),
    "16-bit grey PNG": ("I;16", "PNG", {}),
    "lossless WebP": ("RGB", "WEBP", {"lossless": True}),
    "RGBA WebP": ("RGBA", "WEBP", {}),
    "GIF": ("P", "GIF", {}),
    "BMP": ("RGB", "BMP", {}),
}


@pytest.mark.parametrize("case", CASES)
def test_the_charge_covers_the_decodes_peak_without_overcharging_it(case):
    mode, fmt, options = CASES[case]
    out = io.BytesIO()
    picture(mode).save(out, fmt, **options)
    measured = subprocess.run(
        [sys.executable, "-c", MEASURE],
        input=out.getvalue(),
        capture_output=True,
        cwd=ROOT,
        check=True,
    )
    peak, cost = map(int, measured.stdout.split())
    print(f"{case}: peak {peak / MIB:.0f} MiB, charged {cost / MIB:.0f} MiB")
    assert peak <= cost
    assert cost <= 2 * peak + 8 * MIB  # a charge far above the real cost refuses for nothing
