"""schemathesis hooks for errand (loaded by scripts/schemathesis.sh via SCHEMATHESIS_HOOKS).

errand's document is OpenAPI 3.1, which has no keyword for one event of a
`text/event-stream` response: it describes the stream as a string, for client generators,
and names each event's schema in the extension `x-item-schema`, meaning what OpenAPI 3.2's
`itemSchema` means. schemathesis reads `itemSchema`, so this hook renames the extension
before the document is loaded: schemathesis then checks every event the API sends against
`TaskEvent`, and each event's `data` against `TaskRecord` (its `contentSchema`).
"""

import schemathesis


@schemathesis.hook
def before_load_schema(context, raw_schema):
    for path_item in raw_schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                media = response.get("content", {}).get("text/event-stream")
                if isinstance(media, dict) and "x-item-schema" in media:
                    media["itemSchema"] = media.pop("x-item-schema")
                    # With `itemSchema` present, schemathesis reads `schema` as the whole
                    # stream's events as an array; the string it documents is for generators.
                    media.pop("schema", None)


# The tutorial's demo delays are real waits: `/async/await-sequential?delay_ms=9999` takes 30
# s, and a fuzz run draws hundreds of in-range values. Valid ones are cut to at most 20 ms so a
# case takes well under a second; values the document rejects go out as generated (the hook
# runs before schemathesis re-judges each case as valid or not). The boundaries themselves are
# probed by crates/api/tests/api/contract.rs.
DEMO_DELAYS = {
    "/async/await-sequential": "delay_ms",
    "/async/gather-concurrent": "delay_ms",
    "/async/blocking": "ms",
    "/async/offloaded": "ms",
}
SHORTEST = 20


@schemathesis.hook
def before_call(context, case, kwargs):
    name = DEMO_DELAYS.get(case.operation.path)
    query = case.query
    if name is None or not isinstance(query, dict):
        return
    value = query.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and SHORTEST < value <= 10_000:
        query[name] = SHORTEST
