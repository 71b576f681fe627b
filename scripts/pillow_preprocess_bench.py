# Pillow baseline for `alexnet bench --preprocess`: the same preprocessing as ours
# (decode, EXIF transpose, RGB, resize the shorter side to S, central SxS crop, raw
# bytes) over every JPEG in a folder, one process, one core. Prints one JSON line with
# the best pass's wall and CPU seconds.
# usage: /usr/bin/python3 pillow_preprocess_bench.py DIR [--size 256] [--repeat 2] [--part i/n] [--resample bilinear]
import argparse, json, os, time
from PIL import Image, ImageOps

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--size", type=int, default=256)
ap.add_argument("--repeat", type=int, default=2)
ap.add_argument("--resample", default="bilinear", choices=["bilinear", "bicubic", "lanczos"], help="Pillow's filter (sharp's linear, cubic, lanczos3)")
ap.add_argument("--part", default="0/1", help="i/n: this process takes every n-th file from i")
a = ap.parse_args()
files = sorted(os.path.join(a.dir, f) for f in os.listdir(a.dir) if f.lower().endswith((".jpg", ".jpeg")))
part, parts = map(int, a.part.split("/"))
blobs = [open(f, "rb").read() for f in files[part::parts]]

import io
RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}[a.resample]
def prep(b, s):
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(b))).convert("RGB")
    w, h = im.size
    scale = s / min(w, h)
    nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
    im = im.resize((nw, nh), RESAMPLE)
    left, top = (nw - s) // 2, (nh - s) // 2
    return im.crop((left, top, left + s, top + s)).tobytes()

prep(blobs[0], a.size)  # warm-up
best, best_cpu = float("inf"), float("inf")
for _ in range(a.repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    for b in blobs:
        assert len(prep(b, a.size)) == a.size * a.size * 3
    seconds = time.perf_counter() - t0
    if seconds < best:
        best, best_cpu = seconds, time.process_time() - c0
print(json.dumps({"backend": "pillow", "version": Image.__version__, "resample": a.resample, "images": len(blobs), "seconds": best, "cpu_seconds": best_cpu, "img_s": round(len(blobs) / best, 1)}))
