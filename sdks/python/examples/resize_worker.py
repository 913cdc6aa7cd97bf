"""The README's worker: a `resize` kind on queue `images`, with a dataclass payload (whose
schema errand checks at submit), progress, cancellation and a retry.

    python examples/resize_worker.py --url http://localhost:8080
    curl -X POST localhost:8080/v1/tasks -H 'content-type: application/json' \\
         -d '{"kind": "resize", "queue": "images", "payload": {"width": 640}}'
"""

import argparse
import random
from dataclasses import dataclass
from typing import Annotated

from errand import Context, Retry, Worker

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--url", default="http://localhost:8080")
args = ap.parse_args()

worker = Worker(args.url, name="resize", queues={"images": 4})


@dataclass
class Resize:
    """An image to resize."""

    width: Annotated[int, {"minimum": 1, "maximum": 4096}]
    height: int | None = None


@dataclass
class Resized:
    ok: bool
    width: int


@worker.task(queue="images", idempotent=True)
def resize(p: Resize, ctx: Context) -> Resized:
    """Resizes an image (here: pretends to, for two seconds)."""
    for step in range(4):
        ctx.progress(step * 25, f"step {step + 1} of 4")
        ctx.sleep(0.5)  # raises Cancelled at once when a client cancels
    if random.random() < 0.1:
        raise Retry("the image store was busy", in_secs=1)
    return Resized(ok=True, width=p.width)


worker.run()
