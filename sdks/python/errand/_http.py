"""The one way the SDK calls errand: JSON over HTTP, with backoff where waiting can help.

Transport errors, 502-504 and 503 (Redis unavailable, with `Retry-After`) are waited out
with jittered exponential backoff (100 ms doubling to 5 s, or what `Retry-After` says);
the worker's loops must outlive an api restart or a Redis failover without losing a task
they hold. Every other answer goes back to the caller, which knows what it means.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Callable

import httpx

from .errors import ErrandError

log = logging.getLogger("errand")

_RETRY_STATUSES = {502, 503, 504}


def _headers(api_key: str | None) -> dict:
    h = {"user-agent": "errand-sdk-python/0.1"}
    if api_key:
        h["authorization"] = f"Bearer {api_key}"
    return h


def _retry_after(res: httpx.Response | None, fallback: float) -> float:
    if res is not None:
        try:
            return max(0.05, min(60.0, float(res.headers.get("retry-after", ""))))
        except ValueError:
            pass
    return fallback


def problem(res: httpx.Response) -> dict:
    try:
        body = res.json()
        return body if isinstance(body, dict) else {}
    except ValueError:
        return {}


def raise_for(res: httpx.Response, what: str) -> None:
    """An `ErrandError` for an answer the caller cannot go on from."""
    p = problem(res)
    detail = p.get("detail") or res.text[:300]
    field = f" ({p['field']})" if p.get("field") else ""
    raise ErrandError(f"{what}: {res.status_code}{field}: {detail}", status=res.status_code,
                      problem=p)


class AsyncTransport:
    """An `httpx.AsyncClient` on one errand base URL."""

    def __init__(self, url: str, api_key: str | None, *, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.url, headers=_headers(api_key),
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16))

    async def post(self, path: str, body: Any, *, timeout: float | None = None,
                   give_up: Callable[[], bool] = lambda: False) -> httpx.Response:
        """POST until errand answers something other than "not now"; `give_up()` true
        between tries ends the waiting with the last answer (or error)."""
        delay = 0.1
        while True:
            res = None
            try:
                kw = {"timeout": timeout} if timeout is not None else {}
                res = await self.http.post(path, json=body, **kw)
                if res.status_code not in _RETRY_STATUSES:
                    return res
                why = f"{res.status_code} {problem(res).get('detail', '')}"
            except httpx.TransportError as e:
                if give_up():
                    raise
                why = f"{type(e).__name__}: {e}"
            if give_up() and res is not None:
                return res
            wait = _retry_after(res, delay) * random.uniform(0.8, 1.2)
            log.warning("errand %s%s: %s; again in %.2fs", self.url, path, why, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, 5.0)

    async def aclose(self) -> None:
        await self.http.aclose()
