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
# s, its default (1 s per await) 3 s, and a fuzz run draws hundreds of them. Valid ones, and
# an absent one, are cut to 20 ms so a case takes well under a second; values the document
# rejects go out as generated (the hook runs before schemathesis re-judges each case as valid
# or not). The boundaries themselves are probed by crates/api/tests/api/contract.rs.
DEMO_DELAYS = {
    "/async/await-sequential": "delay_ms",
    "/async/gather-concurrent": "delay_ms",
    "/async/blocking": "ms",
    "/async/offloaded": "ms",
}
SHORTEST = 20
LONGEST = 10_000


@schemathesis.hook
def before_call(context, case, kwargs):
    name = DEMO_DELAYS.get(case.operation.path)
    if name is None:
        return
    if case.query is None:
        case.query = {}
    query = case.query
    if not isinstance(query, dict):
        return
    value = query.get(name)
    if value is None and name not in query:
        query[name] = SHORTEST
    elif isinstance(value, int) and not isinstance(value, bool) and SHORTEST < value <= LONGEST:
        query[name] = SHORTEST
    elif isinstance(value, str) and value.isdigit() and SHORTEST < int(value) <= LONGEST:
        query[name] = str(SHORTEST)
