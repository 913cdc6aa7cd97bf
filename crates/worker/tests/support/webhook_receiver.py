"""A webhook receiver for errand's tests: every request is verified with the third-party
`standardwebhooks` package (PyPI), not with errand's own code.

Usage: webhook_receiver.py --plan 500,500,200 --secret whsec_... [--secret ...]
Prints its port on the first line, then one JSON line per request received:
{"n", "id", "timestamp", "verified": [one bool per --secret], "status", "body", "at"}.
Request n (1-based) is answered with the n-th entry of --plan (200 once the plan is used
up); `hang` answers only after 60 s, so the sender's attempt is still in flight when the
test kills it. An answer is sent only if at least one secret verified the request;
otherwise 401.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

parser = argparse.ArgumentParser()
parser.add_argument("--plan", default="")
parser.add_argument("--secret", action="append", default=[])
args = parser.parse_args()
plan = [p for p in args.plan.split(",") if p]
verifiers = [Webhook(s) for s in args.secret]
lock = threading.Lock()
count = 0


def emit(record):
    with lock:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        with lock:
            count += 1
            n = count
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k: v for k, v in self.headers.items()}
        verified = []
        for w in verifiers:
            try:
                w.verify(raw, headers)
                verified.append(True)
            except Exception:
                verified.append(False)
        answer = plan[n - 1] if n <= len(plan) else "200"
        if not any(verified):
            answer = "401"
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        emit({
            "n": n,
            "id": self.headers.get("webhook-id"),
            "timestamp": self.headers.get("webhook-timestamp"),
            "signature": self.headers.get("webhook-signature"),
            "verified": verified,
            "status": answer,
            "body": body,
            "at": time.time(),
        })
        if answer == "hang":
            time.sleep(60)
            answer = "200"
        try:
            self.send_response(int(answer))
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:
            pass  # the sender is gone (killed mid-attempt)

    def log_message(self, *a):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
