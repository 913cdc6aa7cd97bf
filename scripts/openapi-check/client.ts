// A small errand client in TypeScript, type-checked by scripts/openapi-check.sh against the
// types openapi-typescript generates from the product document (./errand.ts, written there
// at check time). It fails the check when the document loses what makes a client typed:
// each `@ts-expect-error` below must still be an error, and each call must still compile.
// docs/clients.md quotes it.

import createClient from "openapi-fetch";
import type { components, paths } from "./errand";

type Schemas = components["schemas"];
export type TaskRecord = Schemas["TaskRecord"];
export type TaskEvent = Schemas["TaskEvent"];

const client = createClient<paths>({
  baseUrl: "http://127.0.0.1:8080",
  // Needed when the server has api.api_keys; ignored otherwise.
  headers: { Authorization: "Bearer s3cret" },
});

/** Submits a sleep task; the body is checked against the `sleep` branch of SubmitTask. */
export async function submitSleep(seconds: number): Promise<TaskRecord> {
  const { data, error } = await client.POST("/v1/tasks", {
    body: { kind: "sleep", payload: { duration_secs: seconds }, max_attempts: 3 },
    params: { header: { "Idempotency-Key": `sleep-${seconds}` } },
  });
  if (error) {
    // Every error is a problem document that names the field at fault.
    throw new Error(`${error.status} ${error.title}: ${error.detail} (${error.field ?? "-"})`);
  }
  return data;
}

/** A record's result is typed by its kind once `kind` is tested. */
export function summary(r: TaskRecord): string {
  switch (r.kind) {
    case "sha256":
      return r.result ? `${r.result.sha256} after ${r.result.rounds} rounds` : r.state;
    case "fibonacci":
      return r.result?.value ?? `${r.result?.first_digits}…${r.result?.last_digits}`;
    case "sleep":
      return r.result?.message ?? `${r.progress?.percent ?? 0}%`;
    case "http_request":
      return r.result ? `HTTP ${r.result.status}` : (r.error?.message ?? r.state);
    default:
      return r.state;
  }
}

/** Many kinds in one batch; a schedule of one kind. */
export async function batchAndSchedule(): Promise<void> {
  const batch = await client.POST("/v1/tasks/batch", {
    body: {
      tasks: [
        { kind: "noop" },
        { kind: "long_running", payload: { duration_secs: 1 } },
        { kind: "sha256", payload: { text: "abc" } },
        { kind: "fibonacci", payload: { n: 90 }, queue: "math" },
        { kind: "fan_out", payload: { requests: [{ url: "https://example.com/a" }] } },
        { kind: "send_email", payload: { to: ["ada@example.com"], subject: "Hi", text: "Hello" } },
      ],
    },
  });
  if (batch.data) console.log(batch.data.created, batch.data.tasks[0]?.state);
  const schedule = await client.POST("/v1/schedules", {
    body: { id: "nightly-fib", cron: "0 0 3 * * *", timezone: "Europe/Paris", kind: "fibonacci", payload: { n: 1000 } },
  });
  if (schedule.data) console.log(schedule.data.next_run_at ?? "disabled");
}

/** Reads one server-sent event block (`event:` and `data:` lines). */
export function parseEvent(block: string): TaskEvent | undefined {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue; // a keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    if (field === "data") data.push(value);
  }
  return data.length ? ({ event, data: data.join("\n") } as TaskEvent) : undefined;
}

/** Follows a task over SSE until it ends, calling `onRecord` with each record. */
export async function follow(id: string, onRecord: (r: TaskRecord) => void): Promise<void> {
  const { response } = await client.GET("/v1/tasks/{id}/events", {
    params: { path: { id } },
    parseAs: "stream",
  });
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const ev = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (!ev) continue;
      if (ev.event === "gone") return;
      onRecord(JSON.parse(ev.data) as TaskRecord);
    }
  }
}

// What the document must keep rejecting at compile time.
export const rejected: Schemas["SubmitTask"][] = [
  // @ts-expect-error a sleep payload needs duration_secs
  { kind: "sleep", payload: {} },
  // @ts-expect-error another kind's payload does not fit
  { kind: "sleep", payload: { n: 10 } },
  // @ts-expect-error no such kind
  { kind: "nope", payload: {} },
  // @ts-expect-error n is an integer, not a string
  { kind: "fibonacci", payload: { n: "10" } },
  // @ts-expect-error unknown submit field
  { kind: "noop", urgency: 1 },
  // @ts-expect-error a chaos task is not offered by a default server
  { kind: "chaos", payload: { mode: "panic" } },
];
