"""JSON Schema from Python types, and JSON to and from them.

errand validates every submit against the kind's `payload_schema` (and every result against
its `result_schema`) before a worker sees it, so the schema is derived from the task's own
annotations rather than written twice. Dataclasses and `TypedDict`-free plain types are
handled here; pydantic models bring their own (`model_json_schema`). Dataclass objects are
closed (`additionalProperties: false`): a misspelt field is a 422 at submit, not a
`TypeError` in a worker.

Constraints ride on `typing.Annotated`: `Annotated[int, {"minimum": 1, "maximum": 4096}]`
merges the dict into the field's schema.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import types
import typing
import uuid
from typing import Any

try:  # pydantic is optional (the `pydantic` extra).
    import pydantic

    _BaseModel: type | None = pydantic.BaseModel
except ImportError:  # pragma: no cover - exercised without the extra
    pydantic = None
    _BaseModel = None

_NONE = type(None)


def is_model(tp: Any) -> bool:
    """A pydantic (v2) model class."""
    return _BaseModel is not None and isinstance(tp, type) and issubclass(tp, _BaseModel)


def schema_of(tp: Any) -> dict:
    """The JSON Schema (2020-12) of values of `tp`."""
    if tp is Any or tp is typing.Any:
        return {}
    if is_model(tp):
        return _inline_refs(tp.model_json_schema())
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        s = dict(schema_of(base))
        for m in meta:
            if isinstance(m, dict):
                s.update(m)
        return s
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        return {"anyOf": [schema_of(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin in (list, tuple, set, frozenset, typing.Sequence):
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return {"type": "array", "prefixItems": [schema_of(a) for a in args],
                    "minItems": len(args), "maxItems": len(args)}
        s: dict = {"type": "array"}
        if args:
            s["items"] = schema_of(args[0])
        if origin in (set, frozenset):
            s["uniqueItems"] = True
        return s
    if origin in (dict, typing.Mapping):
        args = typing.get_args(tp)
        s = {"type": "object"}
        if len(args) == 2:
            s["additionalProperties"] = schema_of(args[1])
        return s
    if tp is _NONE or tp is None:
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if tp is _dt.datetime:
        return {"type": "string", "format": "date-time"}
    if tp is _dt.date:
        return {"type": "string", "format": "date"}
    if tp is uuid.UUID:
        return {"type": "string", "format": "uuid"}
    if tp in (list, tuple):
        return {"type": "array"}
    if tp is dict:
        return {"type": "object"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_schema(tp)
    raise TypeError(f"errand cannot derive a JSON Schema for {tp!r}: "
                    "use a dataclass, a pydantic model, a JSON type, or pass the schema")


def _dataclass_schema(tp: type) -> dict:
    hints = typing.get_type_hints(tp, include_extras=True)
    props: dict = {}
    required: list[str] = []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        s = dict(schema_of(hints[f.name]))
        if f.metadata.get("description"):
            s["description"] = f.metadata["description"]
        props[f.name] = s
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    s = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        s["required"] = required
    if tp.__doc__ and not tp.__doc__.startswith(tp.__name__ + "("):
        s["description"] = tp.__doc__.strip()
    return s


def _inline_refs(s: dict) -> dict:
    """pydantic puts nested models in `$defs` behind `$ref`s; errand's registry keeps each
    schema on its own, so the references are resolved in place."""
    defs = s.pop("$defs", {})
    if not defs:
        return s

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            ref = v.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: walk(x) for k, x in v.items() if k != "$ref"}
                return {**walk(defs[ref[len("#/$defs/"):]]), **rest}
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(s)


def from_json(tp: Any, value: Any) -> Any:
    """`value` (decoded JSON, already checked against `schema_of(tp)`) as a `tp`."""
    if tp is Any or tp is None or value is None:
        return value
    if is_model(tp):
        return tp.model_validate(value)
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return from_json(typing.get_args(tp)[0], value)
    if origin is typing.Union or origin is types.UnionType:
        for a in typing.get_args(tp):
            if a is _NONE:
                continue
            try:
                return from_json(a, value)
            except (TypeError, ValueError, KeyError):
                continue
        return value
    if origin in (list, set, frozenset, typing.Sequence) and isinstance(value, list):
        args = typing.get_args(tp)
        items = [from_json(args[0], v) for v in value] if args else value
        return (set if origin is set else frozenset if origin is frozenset else list)(items)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(tp)
        if args and args[-1] is Ellipsis:
            return tuple(from_json(args[0], v) for v in value)
        return tuple(from_json(a, v) for a, v in zip(args, value)) if args else tuple(value)
    if origin in (dict, typing.Mapping) and isinstance(value, dict):
        args = typing.get_args(tp)
        return {k: from_json(args[1], v) for k, v in value.items()} if len(args) == 2 else value
    if tp is _dt.datetime and isinstance(value, str):
        return _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if tp is _dt.date and isinstance(value, str):
        return _dt.date.fromisoformat(value)
    if tp is uuid.UUID and isinstance(value, str):
        return uuid.UUID(value)
    if tp is float and isinstance(value, int):
        return float(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type) and isinstance(value, dict):
        hints = typing.get_type_hints(tp, include_extras=True)
        return tp(**{k: from_json(hints.get(k, Any), v) for k, v in value.items()})
    return value


def to_json(value: Any) -> Any:
    """A task's return value as JSON: dataclasses and models become objects."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if _BaseModel is not None and isinstance(value, _BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"a task returned {type(value).__name__}, which is not JSON")
