"""errand's Python SDK: workers that run your functions, and a client that submits to them.

```python
from dataclasses import dataclass
from errand import Worker, Context

worker = Worker("http://localhost:8080", queues={"images": 8})

@dataclass
class Resize:
    width: int

@worker.task(idempotent=True)
def resize(p: Resize, ctx: Context) -> dict:
    ctx.progress(50, "half way")
    return {"ok": True, "width": p.width}

worker.run()
```

# Layout

- `worker`: `Worker`, its lease, heartbeat and complete loops, and stopping.
- `task`: a task function and the kind it registers.
- `schema`: JSON Schema from annotations (dataclasses, pydantic, JSON types) and back.
- `context`: `Context`, what a running attempt knows (progress, cancellation).
- `errors`: `Retry`, `Fail`, `Cancelled`, and `ErrandError`.
- `client`: `Client`: submit, get, wait, cancel, retry.
- `_http`: the transport, with backoff for 503 and transport errors.
"""

from .client import Client
from .context import Context
from .errors import Cancelled, ErrandError, Fail, Retry
from .worker import Worker

__all__ = ["Client", "Context", "Cancelled", "ErrandError", "Fail", "Retry", "Worker"]
__version__ = "0.1.0"
