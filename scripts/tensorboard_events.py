"""Reads a TensorBoard log folder with TensorBoard's own EventAccumulator and prints what
it holds as one JSON object: every scalar point and every image, per tag, in the order
TensorBoard keeps them.

    PYTHONPATH=.cache/tensorboard /usr/bin/python3 scripts/tensorboard_events.py LOGDIR

LOGDIR is a folder path, or s3://bucket/prefix/ read through TensorBoard's S3 support
(boto3, with the AWS environment: AWS_ENDPOINT_URL or S3_ENDPOINT, keys, region).
scripts/install-python-deps.sh installs the pinned tensorboard and boto3 there.

Output: {"scalars": {tag: [[step, value, wall_time], ...]},
         "images": {tag: [{"step", "width", "height", "bytes", "png"}, ...]},
         "files": [the event files' names, in the order they were read]}
(png: whether the encoded image starts with PNG's signature). Exit 1 with a message when
the folder holds no event file.
"""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator, io_wrapper
from tensorboard.compat.tensorflow_stub.io import gfile

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def main(logdir):
    files = sorted(
        name for name in gfile.listdir(logdir) if io_wrapper.IsSummaryEventsFile(name)
    )
    if not files:
        sys.exit(f"tensorboard_events: no event file (a name with 'tfevents') in {logdir}")
    # 0: keep every point (the default keeps a sample of 10,000 scalars and 4 images).
    keep_all = {event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    accumulator = event_accumulator.EventAccumulator(logdir, size_guidance=keep_all)
    accumulator.Reload()
    tags = accumulator.Tags()
    scalars = {
        tag: [[e.step, e.value, e.wall_time] for e in accumulator.Scalars(tag)]
        for tag in tags[event_accumulator.SCALARS]
    }
    images = {
        tag: [
            {
                "step": e.step,
                "width": e.width,
                "height": e.height,
                "bytes": len(e.encoded_image_string),
                "png": e.encoded_image_string.startswith(PNG_SIGNATURE),
            }
            for e in accumulator.Images(tag)
        ]
        for tag in tags[event_accumulator.IMAGES]
    }
    print(json.dumps({"scalars": scalars, "images": images, "files": files}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tensorboard_events.py LOGDIR")
    main(sys.argv[1])
