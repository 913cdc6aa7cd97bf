"""A worker of one kind that does nothing: `just bench`'s W6 measures the SDK's own cost
with it (docs/performance.md).

    python examples/noop_worker.py --url http://localhost:8080 --queue bench
"""

import argparse
import logging
from dataclasses import dataclass

from errand import Worker

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--url", default="http://localhost:8080")
ap.add_argument("--queue", default="bench")
ap.add_argument("--concurrency", type=int, default=1000)
args = ap.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

worker = Worker(args.url, name="py-noop", queues={args.queue: args.concurrency})


@dataclass
class Noop:
    n: int = 0


@worker.task(name="py_noop", idempotent=True)
async def py_noop(p: Noop) -> dict:
    """Does nothing, as fast as the SDK lets it."""
    return {"n": p.n}


worker.run()
