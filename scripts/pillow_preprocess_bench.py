# Pillow baseline for `alexnet bench --preprocess`: the same preprocessing as ours
# (decode, EXIF transpose, RGB, resize the shorter side to S, central SxS crop, raw
# bytes) over every JPEG in a folder, one process, one core. Prints one JSON line.
# usage: /usr/bin/python3 pillow_preprocess_bench.py DIR [--size 256] [--repeat 2]
import argparse, json, os, time
from PIL import Image, ImageOps

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--size", type=int, default=256)
ap.add_argument("--repeat", type=int, default=2)
a = ap.parse_args()
files = sorted(os.path.join(a.dir, f) for f in os.listdir(a.dir) if f.lower().endswith((".jpg", ".jpeg")))
blobs = [open(f, "rb").read() for f in files]

import io
def prep(b, s):
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(b))).convert("RGB")
    w, h = im.size
    scale = s / min(w, h)
    nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - s) // 2, (nh - s) // 2
    return im.crop((left, top, left + s, top + s)).tobytes()

prep(blobs[0], a.size)  # warm-up
best = 0.0
for _ in range(a.repeat):
    t0 = time.perf_counter()
    for b in blobs:
        assert len(prep(b, a.size)) == a.size * a.size * 3
    best = max(best, len(blobs) / (time.perf_counter() - t0))
print(json.dumps({"backend": "pillow", "version": Image.__version__, "images": len(blobs), "img_s": round(best, 1)}))
