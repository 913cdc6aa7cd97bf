// A whole errand worker in TypeScript, from the product document alone: the HTTP worker
// protocol (docs/http-workers.md) through the types openapi-typescript generates (./errand.ts)
// and openapi-fetch. scripts/openapi-check.sh type-checks it, so the protocol's schemas
// stay what a generated client needs; docs/http-workers.md quotes it.

import createClient from "openapi-fetch";
import type { components, paths } from "./errand";

type Schemas = components["schemas"];
type LeasedTask = Schemas["LeasedTask"];
type Report = Schemas["Report"];

const api = createClient<paths>({
  baseUrl: "http://127.0.0.1:8080",
  // A key of scope `worker` (`worker:<secret>` in api.api_keys); ignored without keys.
  headers: { Authorization: "Bearer worker-s3cret" },
});

/** The work: a `resize` task's payload in, its result out. */
async function resize(payload: { width: number }): Promise<{ ok: boolean; width: number }> {
  return { ok: true, width: payload.width };
}

async function register(): Promise<Schemas["Registered"]> {
  const { data, error } = await api.POST("/v1/worker/register", {
    body: {
      name: "ts-worker",
      queues: [{ name: "ts", concurrency: 8 }],
      kinds: [
        {
          name: "resize",
          summary: "Resizes (in TypeScript).",
          idempotent: true,
          payload_schema: {
            type: "object",
            required: ["width"],
            properties: { width: { type: "integer", minimum: 1 } },
          },
          result_schema: { type: "object", required: ["ok"] },
        },
      ],
    },
  });
  if (error) throw new Error(`${error.status} ${error.title}: ${error.detail}`);
  return data;
}

async function run(t: LeasedTask): Promise<Report> {
  try {
    const result = await resize(t.payload as { width: number }); // validated at submit against payload_schema
    return { id: t.id, token: t.token, outcome: "succeeded", result };
  } catch (e) {
    return {
      id: t.id,
      token: t.token,
      outcome: "failed",
      error: { kind: e instanceof Error ? e.name : "Error", message: String(e) },
      retryable: true,
    };
  }
}

export async function main(): Promise<void> {
  let me = await register();
  const held = new Map<string, LeasedTask>();
  // Heartbeats keep the leases (and the registration) alive while tasks run.
  setInterval(async () => {
    const { data } = await api.POST("/v1/worker/heartbeat", {
      body: {
        worker: me.worker,
        tasks: [...held.values()].map((t) => ({ id: t.id, token: t.token })),
      },
    });
    for (const id of data?.lost ?? []) held.delete(id);
  }, me.heartbeat_secs * 1000);
  for (;;) {
    const { data, error, response } = await api.POST("/v1/worker/lease", {
      body: { worker: me.worker, max: 8, wait_ms: 5000 },
    });
    if (response.status === 404) {
      me = await register(); // the registration lapsed
      continue;
    }
    if (error) throw new Error(`${error.status} ${error.title}: ${error.detail}`);
    for (const t of data.tasks) held.set(t.id, t);
    const reports = await Promise.all(data.tasks.map(run));
    if (reports.length > 0) {
      const done = await api.POST("/v1/worker/complete", {
        body: { worker: me.worker, reports },
      });
      for (const r of done.data?.results ?? []) {
        // 409: the lease lapsed and another attempt holds the task; nothing to do.
        if (r.status !== 200) console.warn(`report for ${r.id}: ${r.status} ${r.detail ?? ""}`);
        held.delete(r.id);
      }
    }
  }
}

// @ts-expect-error: an outcome the protocol does not know is refused by the types.
export const wrongOutcome: Report = { id: "x", token: "t", outcome: "done" };
