"""A task definition: the user's function and what errand's kind registry is told about it.

The payload type is the annotation of the function's first parameter; a second parameter
(any name) receives the `Context`. The result type is the return annotation. Both become
JSON Schema at registration, so errand refuses bad payloads at submit (422 naming the field)
and bad results at report.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable

from . import schema


@dataclass
class TaskDef:
    name: str
    queue: str
    fn: Callable[..., Any]
    is_async: bool
    payload_type: Any
    wants_context: bool
    payload_schema: dict
    result_schema: dict | None
    summary: str
    idempotent: bool
    aliases: list[str]
    example: Any

    @classmethod
    def of(cls, fn: Callable[..., Any], *, name: str | None, queue: str, summary: str | None,
           idempotent: bool, aliases: list[str] | None, payload_schema: dict | None,
           result_schema: dict | None, example: Any) -> TaskDef:
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if not 1 <= len(params) <= 2:
            raise TypeError(f"task {fn.__qualname__} must take (payload) or (payload, ctx)")
        hints = typing.get_type_hints(fn, include_extras=True)
        ptype = hints.get(params[0].name, Any)
        if payload_schema is None:
            payload_schema = schema.schema_of(ptype) if ptype is not Any else {"type": "object"}
        if result_schema is None and "return" in hints:
            rtype = hints["return"]
            result_schema = None if rtype is Any else schema.schema_of(rtype)
        doc = inspect.getdoc(fn) or ""
        return cls(
            name=name or fn.__name__,
            queue=queue,
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            payload_type=ptype,
            wants_context=len(params) == 2,
            payload_schema=payload_schema,
            result_schema=result_schema,
            summary=summary if summary is not None else doc.split("\n\n")[0].replace("\n", " "),
            idempotent=idempotent,
            aliases=list(aliases or []),
            example=example,
        )

    def spec(self) -> dict:
        """This kind as `POST /v1/worker/register` takes it."""
        s: dict = {"name": self.name, "summary": self.summary[:200],
                   "idempotent": self.idempotent, "payload_schema": self.payload_schema}
        if self.aliases:
            s["aliases"] = self.aliases
        if self.result_schema is not None:
            s["result_schema"] = self.result_schema
        if self.example is not None:
            s["example"] = schema.to_json(self.example)
        return s
