"""Peak memory of decoding hostile photos: a shopper's upload and a catalogue image.

A small compressed file can decode into hundreds of megabytes (a flat 16-bit PNG, a
progressive JPEG, a palette PNG with transparency), and every copy made while turning it into
the encoder's RGB input multiplies that. This bench generates such a corpus, each file under
``VISUALSEARCH_MAX_UPLOAD_BYTES`` and ``VISUALSEARCH_MAX_PIXELS``, and measures, in a fresh
subprocess per file so that one case cannot inherit another's heap:

* ``upload``: ``read_photo`` then ``preview_data_url``, what ``POST /visual/photo/`` does
  before the encoder runs;
* ``catalogue``: what a reindex does with one catalogue image before the encoder runs
  (``visualsearch.indexing.open_catalogue_image`` where it exists, else
  ``open_image``).

The figure is the growth of the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs`` once the imports and a warm-up are done) over its resident set
just before the call: what one request adds to a worker. Linux only.

Usage::

    .venv/bin/python bench/upload_memory.py [--cases png16,rgba_png] [--paths upload]

Prints one JSON object: for each case its size, and for each path the peak growth in MB,
the seconds taken and the outcome (``"ok"`` and the decoded size, or the refusal's code).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# -- the corpus ------------------------------------------------------------------------------


def _shapes(im, seed=0):
    """A few flat rectangles: something for the encoder to see, and still compressible."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(im)
    w, h = im.size
    for i in range(6):
        x0, y0 = (seed * 7 + i * 131) % (w // 2), (seed * 11 + i * 97) % (h // 2)
        fill = (i * 40) % 256 if len(im.getbands()) == 1 else None
        if fill is None:
            fill = tuple((i * c) % 256 for c in (40, 90, 150, 255))[: len(im.getbands())]
            if im.mode == "RGBA":
                fill = fill[:3] + (255,)
        draw.rectangle((x0, y0, x0 + w // 3, y0 + h // 4), fill=fill)
    return im


def _photo_like(size):
    """Smooth colour gradients with shapes: JPEG-compressible like a studio photo."""
    from PIL import Image

    w, h = size
    r = Image.linear_gradient("L").resize(size)
    g = Image.linear_gradient("L").rotate(90).resize(size)
    b = Image.radial_gradient("L").resize(size)
    return _shapes(Image.merge("RGB", (r, g, b)))


def _encode(im, fmt, **params):
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def png16_flat():
    """16-bit greyscale, 7000x5700, one value: a few KB that decode to 80 MB of ``I;16``."""
    from PIL import Image

    return _encode(Image.new("I;16", (7000, 5700), 30000), "PNG"), "flat16.png"


def rgba_png():
    """6000x6000 RGBA with transparent areas: 144 MB decoded."""
    from PIL import Image

    im = Image.new("RGBA", (6000, 6000), (0, 0, 0, 0))
    return _encode(_shapes(im), "PNG"), "cutout.png"


def float_tiff():
    """32-bit float greyscale TIFF, 6000x6000, deflate-compressed."""
    from PIL import Image

    im = _shapes(Image.new("F", (6000, 6000), 0.25))
    return _encode(im, "TIFF", compression="tiff_adobe_deflate"), "float.tif"


def jpeg_40mp():
    """A 40 MP baseline JPEG (7300x5475), as a high-end phone takes."""
    return _encode(_photo_like((7300, 5475)), "JPEG", quality=90), "camera.jpg"


def progressive_jpeg():
    """A 40 MP progressive JPEG without chroma subsampling: libjpeg keeps every DCT
    coefficient of the image until the last scan, whatever the output size (6 bytes a
    pixel: 240 MB)."""
    im = _photo_like((7300, 5475))
    return _encode(im, "JPEG", quality=90, progressive=True, subsampling=0), "progressive.jpg"


def progressive_jpeg_420():
    """The same with 4:2:0 chroma, as web exports usually are (3 bytes a pixel)."""
    im = _photo_like((7300, 5475))
    return _encode(im, "JPEG", quality=90, progressive=True, subsampling=2), "progressive.jpg"


def animated_gif():
    """4000x4000, 300 frames that each change a little: only the first is searched."""
    from PIL import Image

    frames = []
    for i in range(300):
        frame = Image.new("P", (4000, 4000), 0)
        frame.putpalette([v for c in range(256) for v in (c, 255 - c, (c * 7) % 256)])
        frame.paste(1 + i % 200, (i * 10, i * 10, i * 10 + 50, i * 10 + 50))
        frames.append(frame)
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=40)
    return buf.getvalue(), "animated.gif"


def palette_png():
    """6000x6000 palette PNG whose index 0 is transparent (``tRNS``)."""
    from PIL import Image

    im = Image.new("P", (6000, 6000), 0)
    im.putpalette([v for c in range(256) for v in (c, (c * 3) % 256, 255 - c)])
    im.paste(5, (1000, 1000, 4000, 5000))
    im.paste(200, (3000, 500, 5500, 2500))
    return _encode(im, "PNG", transparency=0), "palette.png"


CASES = {
    "png16_flat": png16_flat,
    "rgba_png": rgba_png,
    "float_tiff": float_tiff,
    "jpeg_40mp": jpeg_40mp,
    "progressive_jpeg": progressive_jpeg,
    "progressive_jpeg_420": progressive_jpeg_420,
    "animated_gif": animated_gif,
    "palette_png": palette_png,
}
PATHS = ("upload", "catalogue")


# -- measuring, in a child process -----------------------------------------------------------


def _status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _child(path, filename):
    """Decode ``filename`` the way ``path`` does; prints one JSON line."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from visualsearch import indexing
    from visualsearch.imaging import open_image
    from visualsearch.previews import preview_data_url
    from visualsearch.uploads import InvalidUpload, read_photo

    decode_catalogue = getattr(indexing, "open_catalogue_image", open_image)

    def run(data, name):
        if path == "upload":
            photo = read_photo(SimpleUploadedFile(name, data), None)
            preview_data_url(photo.image)
            return photo.image.size
        return decode_catalogue(data).size

    # Warm-up: lazy imports, Pillow's plugins and codecs, numpy; none of it counts.
    for fmt in ("PNG", "JPEG", "GIF", "TIFF"):
        run(_encode(Image.new("RGB", (64, 48), (9, 99, 199)), fmt), "warm." + fmt.lower())
    data = Path(filename).read_bytes()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current resident set
    before = _status("VmRSS")
    start = time.perf_counter()
    try:
        outcome = {"result": "ok", "size": list(run(data, Path(filename).name))}
    except InvalidUpload as exc:
        outcome = {"result": exc.code}
    except Exception as exc:  # a catalogue image that cannot be read: the indexing failure
        outcome = {"result": type(exc).__name__}
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    print(
        json.dumps(
            {"peak_growth_mb": round((peak - before) / 2**20, 1), "seconds": round(seconds, 2)}
            | outcome
        )
    )


def measure(path, filename, timeout=300):
    """Peak memory growth of decoding ``filename`` along ``path``, in a fresh process."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", path, str(filename)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if proc.returncode:
        return {"result": f"crashed (exit {proc.returncode})", "stderr": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--paths", default=",".join(PATHS), help="upload, catalogue or both")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return
    cases = [c for c in args.cases.split(",") if c]
    paths = [p for p in args.paths.split(",") if p]
    unknown = sorted(set(cases) - set(CASES)) + sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown case or path: {', '.join(unknown)}")
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            data, name = CASES[case]()
            filename = Path(tmp) / name
            filename.write_bytes(data)
            report[case] = {"file_kb": round(len(data) / 1024, 1)}
            for path in paths:
                report[case][path] = measure(path, filename)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
