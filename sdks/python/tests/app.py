"""The worker the tests run (as its own process, so it can be signalled): one of each kind
of task the SDK supports, named `<prefix><kind>`, on one queue."""

import argparse
import asyncio
import logging
import os
from dataclasses import dataclass

from pydantic import BaseModel, Field

from errand import Context, Fail, Retry, Worker

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--queue", required=True)
ap.add_argument("--prefix", required=True)
ap.add_argument("--name", default="pytest")
ap.add_argument("--concurrency", type=int, default=4)
ap.add_argument("--drain-secs", type=float, default=30.0)
args = ap.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

P = args.prefix
worker = Worker(args.url, name=args.name, queues={args.queue: args.concurrency},
                drain_secs=args.drain_secs)


@dataclass
class Add:
    x: int
    y: int


@dataclass
class Sum:
    sum: int


class Order(BaseModel):
    item: str
    qty: int = Field(ge=1, le=100)


class Receipt(BaseModel):
    item: str
    total: int


@dataclass
class Sleep:
    secs: float
    tag: str = ""


@worker.task(name=f"{P}add", idempotent=True)
def add(p: Add) -> Sum:
    """Adds two integers (sync)."""
    return Sum(sum=p.x + p.y)


@worker.task(name=f"{P}aadd")
async def aadd(p: Add, ctx: Context) -> Sum:
    """Adds two integers (async)."""
    await asyncio.sleep(0)
    return Sum(sum=p.x + p.y + ctx.attempt - 1)


@worker.task(name=f"{P}order")
def order(p: Order) -> Receipt:
    """A pydantic payload and result."""
    return Receipt(item=p.item, total=p.qty * 3)


@worker.task(name=f"{P}sleepy")
def sleepy(p: Sleep, ctx: Context) -> dict:
    """Sleeps (sync), cancellable, with progress."""
    ctx.progress(50, f"half way {p.tag}")
    ctx.sleep(p.secs)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@worker.task(name=f"{P}asleepy")
async def asleepy(p: Sleep, ctx: Context) -> dict:
    """Sleeps (async); a cancel interrupts the await."""
    ctx.progress(10, "started")
    await asyncio.sleep(p.secs)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@worker.task(name=f"{P}flaky")
def flaky(p: dict, ctx: Context) -> dict:
    """Asks for a retry on its first attempt."""
    if ctx.attempt < 2:
        raise Retry("not yet", in_secs=0.1)
    return {"attempt": ctx.attempt}


@worker.task(name=f"{P}doomed")
def doomed(p: dict) -> dict:
    """Fails for good."""
    raise Fail("this can never work", kind="bad_input")


@worker.task(name=f"{P}boom")
def boom(p: dict) -> dict:
    """Raises an ordinary exception."""
    raise ValueError("kaboom")


@worker.task(name=f"{P}liar")
def liar(p: dict) -> Sum:
    """Returns a result off its own schema."""
    return {"sum": "three"}  # type: ignore[return-value]


@worker.task(name=f"{P}total")
def total(p: dict, ctx: Context) -> dict:
    """A workflow step: adds up its dependencies' sums."""
    ends = ctx.inputs or {}
    return {"sum": sum(ctx.input(s)["sum"] for s in ends if ctx.input(s)),
            "workflow": ctx.workflow, "from": sorted(ends)}


worker.run()
