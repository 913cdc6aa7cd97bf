// errand's dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded), against the real errand-api and
// errand-worker binaries and a private redis-server. Run by `just ui-test`, which builds
// the binaries and installs what is missing. Screenshots go to target/ui/.
//
// One deployment for the whole file (the steps build on each other: the history the
// charts show must survive the restart at the end), with API keys configured, so the
// login and the CSRF-protected forms are the ones a production deployment has.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const BIN = join(ROOT, "target/debug");
const SHOTS = join(ROOT, "target/ui");
const ADMIN_KEY = "ui-test-admin-key-0123456789abcdef";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

const procs = {};
let tmp, redisPort, apiPort, base, context, page;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Polls `check` until it returns a truthy value; fails naming `what` after `ms`. */
async function waitFor(what, ms, check) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const logs = {};
function log(name) {
  logs[name] ??= join(tmp, `${name}.log`);
  return openSync(logs[name], "a");
}

function start(name, bin, args, env = {}) {
  const child = spawn(bin, args, {
    env: {
      ...process.env,
      ERRAND_CONFIG_DIR: join(ROOT, "config"),
      ERRAND__REDIS__URL: `redis://127.0.0.1:${redisPort}`,
      ERRAND__REDIS__KEY_PREFIX: "uitest",
      ERRAND__API__PORT: String(apiPort),
      ERRAND__API__API_KEYS: `admin:${ADMIN_KEY}`,
      ERRAND__TASKS__DIAGNOSTIC_KINDS: "true",
      ERRAND__WORKER__LEASE_SECS: "3",
      RUST_LOG: process.env.RUST_LOG || "info",
      ...env,
    },
    // Logs go to a file per process (read by the last test: no key may appear in them).
    stdio: ["ignore", log(name), log(name)],
  });
  child.exited = new Promise((ok) => child.on("exit", (code, sig) => ok(code ?? sig)));
  procs[name] = child;
  return child;
}

async function stop(name) {
  const child = procs[name];
  if (!child || child.exitCode !== null) return;
  child.kill("SIGTERM");
  const gone = await Promise.race([child.exited, new Promise((r) => setTimeout(() => r("timeout"), 20000))]);
  if (gone === "timeout") child.kill("SIGKILL");
  delete procs[name];
}

async function startApi() {
  start("api", join(BIN, "errand-api"), []);
  await waitFor("errand-api /readyz", 20000, async () => (await fetch(`${base}/readyz`)).ok);
}

function startWorker() {
  // `held` is the queue the pause test holds; `default` keeps running meanwhile.
  start("worker", join(BIN, "errand-worker"), ["--queues", "default=16,held=4"]);
}

async function api(method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function submit(task) {
  const r = await api("POST", "/v1/tasks", task);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  return r.body.id;
}

async function state(id) {
  return (await api("GET", `/v1/tasks/${id}`)).body.state;
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  tmp = mkdtempSync(join(tmpdir(), "errand-ui-"));
  redisPort = await freePort();
  apiPort = await freePort();
  base = `http://127.0.0.1:${apiPort}`;
  start("redis", "redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp]);
  await waitFor("redis-server", 10000, async () => {
    const { Socket } = await import("node:net");
    return new Promise((ok) => {
      const s = new Socket();
      s.once("error", () => ok(false));
      s.connect(redisPort, "127.0.0.1", () => { s.end(); ok(true); });
    });
  });
  await startApi();
  startWorker();
  context = await chromium.launchPersistentContext(join(tmp, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 860 },
  });
  page = context.pages()[0] || (await context.newPage());
  page.on("dialog", (d) => d.accept());
  page.setDefaultTimeout(15000);
});

after(async () => {
  await context?.close();
  for (const name of ["worker", "api", "redis"]) await stop(name);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("login: the dashboard asks for a key, refuses a wrong one, and opens with a right one", async () => {
  await page.goto(`${base}/ui/queues`);
  assert.match(page.url(), /\/ui\/login\?next=/);
  await page.fill("#key", "not-the-key-0000000000000");
  await page.keyboard.press("Enter");
  await page.waitForSelector("text=That key is not one of this server's API keys.");
  await page.fill("#key", ADMIN_KEY);
  await shot("login");
  await page.keyboard.press("Enter");
  await page.waitForURL(`${base}/ui/queues`);
  const cookies = await context.cookies(`${base}/ui`);
  const session = cookies.find((c) => c.name === "errand_session");
  assert.ok(session, "a session cookie");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  assert.ok(!session.value.includes(ADMIN_KEY), "the key is not in the cookie");
  assert.ok(!page.url().includes(ADMIN_KEY), "nor in the URL");
});

test("a running task's progress bar moves to 100 % live", async () => {
  const id = await submit({ kind: "sleep", payload: { duration_secs: 4 } });
  // Found with the keyboard: `/` focuses the id search on the tasks page.
  await page.goto(`${base}/ui/tasks`);
  await page.keyboard.press("/");
  assert.equal(await page.evaluate(() => document.activeElement.id), "id");
  await page.keyboard.type(id);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${base}/ui/tasks/${id}`);
  const seen = new Set();
  let midShot = false;
  await waitFor("the progress bar to reach 100", 20000, async () => {
    const v = await page.evaluate(() => {
      const p = document.getElementById("progress");
      return p ? Number(p.value) : null;
    });
    if (v !== null) seen.add(v);
    if (!midShot && v > 0 && v < 100) {
      midShot = true;
      await shot("task-running");
    }
    return v === 100;
  });
  const between = [...seen].filter((v) => v > 0 && v < 100);
  assert.ok(between.length >= 2, `the bar moved through values between 0 and 100 without a reload: ${[...seen]}`);
  await page.waitForSelector("[data-badge].succeeded");
  await page.waitForSelector("h2:text('Result')");
  await shot("task-succeeded");
});

test("cancel from the task page stops a running task", async () => {
  const id = await submit({ kind: "sleep", payload: { duration_secs: 60 } });
  await waitFor("the task to run", 10000, async () => (await state(id)) === "running");
  await page.goto(`${base}/ui/tasks/${id}`);
  await page.getByRole("button", { name: "Cancel task" }).click();
  await page.waitForSelector(".notice");
  await page.waitForSelector("[data-badge].cancelled", { timeout: 15000 });
  assert.equal(await state(id), "cancelled");
  await shot("task-cancelled");
});

test("a paused queue's submitted tasks wait, then run after resume", async () => {
  const first = await submit({ kind: "sleep", queue: "held", payload: { duration_secs: 0 } });
  await waitFor("held's first task", 10000, async () => (await state(first)) === "succeeded");
  await page.goto(`${base}/ui/queues`);
  await page.getByRole("button", { name: "Pause held" }).click();
  await page.waitForSelector("text=Paused held");
  const held = [];
  for (let i = 0; i < 3; i++) held.push(await submit({ kind: "sleep", queue: "held", payload: { duration_secs: 0 } }));
  // The worker is fetching (it runs `default`'s task), and held's still wait.
  const other = await submit({ kind: "sleep", payload: { duration_secs: 0 } });
  await waitFor("default's task", 10000, async () => (await state(other)) === "succeeded");
  for (const id of held) assert.equal(await state(id), "queued", `paused task ${id} waits`);
  await page.goto(`${base}/ui/queues`);
  const queued = await page.textContent("tr[data-queue=held] td[data-count=queued]");
  assert.equal(queued.trim(), "3");
  await shot("queues-paused");
  await page.getByRole("button", { name: "Resume held" }).click();
  await page.waitForSelector("text=Resumed held");
  await waitFor("held's tasks to run after resume", 10000, async () => {
    for (const id of held) if ((await state(id)) !== "succeeded") return false;
    return true;
  });
});

test("the queues page shows limits and what they hold back, and runs a bulk cancel to its end", async () => {
  const set = await api("PUT", "/v1/queues/held/limits", { rate: { count: 1000, period_ms: 1000, burst: 10 }, per_key: 1 });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  const keyed = [];
  for (let i = 0; i < 3; i++) {
    keyed.push(await submit({ kind: "sleep", queue: "held", payload: { duration_secs: 2 }, concurrency_key: "k1" }));
  }
  // One runs; the other two wait for the key, out of the ready list.
  await waitFor("two tasks waiting for their key", 10000, async () => {
    const l = (await api("GET", "/v1/queues/held/limits")).body;
    return l.held.waiting_for_key === 2;
  });
  await page.goto(`${base}/ui/queues`);
  assert.equal((await page.textContent("tr[data-queue=held] td[data-limits]")).trim(), "1000/s (burst 10) · 1 per key");
  const held = await page.textContent("tr[data-queue=held] td[data-held]");
  assert.match(held, /2 wait for key/);
  assert.doesNotMatch(held, /throttled/);
  assert.match(held, /k1 \(2\)/);
  await shot("queues-limits");

  // Five tasks of a queue nobody serves: cancelled all at once from the page.
  const idle = [];
  for (let i = 0; i < 5; i++) idle.push(await submit({ kind: "sleep", queue: "parked", payload: { duration_secs: 1 } }));
  await page.goto(`${base}/ui/queues`);
  await page.selectOption("form.bulk select[name=queue]", "parked");
  await page.selectOption("form.bulk select[name=what]", "cancel:queued");
  await page.click("form.bulk button[type=submit]");
  await page.waitForSelector("text=Started: cancel every queued task of parked");
  await waitFor("the bulk cancel to be done on the page", 15000, async () => {
    await page.goto(`${base}/ui/queues`);
    const row = await page.$("table.bulks tr[data-status=done]");
    return row !== null && /5 done, 0 skipped of 5 matched/.test(await row.textContent());
  });
  await shot("queues-bulk");
  for (const id of idle) assert.equal(await state(id), "cancelled");
  await waitFor("the keyed tasks to run one after another", 20000, async () => {
    for (const id of keyed) if ((await state(id)) !== "succeeded") return false;
    return true;
  });
  await api("PUT", "/v1/queues/held/limits", {});
});

test("a workflow's page draws its graph and its steps' states change live", async () => {
  const r = await api("POST", "/v1/workflows", {
    id: "ui-flow",
    steps: [
      { name: "fetch", kind: "sleep", payload: { duration_secs: 1 } },
      { name: "split", kind: "noop", map: true, after: ["fetch"], on_failure: "fail",
        payload: { spawn: [{ kind: "sleep", payload: { duration_secs: 0.5 } }, { kind: "sleep", payload: { duration_secs: 0.5 } }] } },
      { name: "report", kind: "gather", after: ["split"], on_failure: "fail" },
    ],
  });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  await page.goto(`${base}/ui/workflows/ui-flow`);
  assert.equal(await page.locator("svg.graph g.node").count(), 3);
  assert.equal(await page.getAttribute("svg.graph g.node[data-step=report]", "data-state"), "waiting");
  // The page refreshes itself while the workflow runs: fetch runs, then the spawned steps.
  await waitFor("fetch to show running", 10000, async () =>
    (await page.getAttribute("svg.graph g.node[data-step=fetch]", "data-state")) === "running");
  await shot("workflow-running");
  await waitFor("the spawned steps to be drawn", 15000, async () =>
    (await page.locator("svg.graph g.node").count()) === 5);
  await waitFor("every step to show succeeded", 20000, async () => {
    const states = await page.$$eval("svg.graph g.node", (ns) => ns.map((n) => n.getAttribute("data-state")));
    return states.length === 5 && states.every((s) => s === "succeeded");
  });
  assert.match(await page.textContent("h1"), /succeeded/);
  await shot("workflow-succeeded");
  await page.goto(`${base}/ui/workflows`);
  assert.match(await page.textContent("tr[data-workflow=ui-flow]"), /5 \/ 5/);
});

async function chartFigures() {
  return page.evaluate(() => {
    const card = document.querySelector(".card[data-queue=default]");
    return {
      total: Number(card.querySelector("figure[data-total]").getAttribute("data-total")),
      okBars: card.querySelectorAll("svg.throughput rect.bar.ok").length,
      failBars: card.querySelectorAll("svg.throughput rect.bar.fail").length,
      points: Number(card.querySelector("figure[data-points]").getAttribute("data-points")),
      barHeight: [...card.querySelectorAll("svg.throughput rect.bar")].reduce((h, r) => h + r.getBBox().height, 0),
    };
  });
}

let beforeRestart;

test("charts render with data after 500 tasks", async () => {
  const tasks = [];
  for (let i = 0; i < 500; i++) {
    tasks.push(i % 25 === 0
      ? { kind: "chaos", payload: { mode: "fail_permanent", secs: 0 } }
      : { kind: "sleep", payload: { duration_secs: (i % 10) / 50 } });
  }
  for (let i = 0; i < tasks.length; i += 250) {
    const r = await api("POST", "/v1/tasks/batch", { tasks: tasks.slice(i, i + 250) });
    assert.ok(r.status < 300, JSON.stringify(r.body).slice(0, 300));
  }
  await waitFor("the 500 tasks to finish", 120000, async () => {
    const q = (await api("GET", "/v1/queues")).body.queues.find((q) => q.name === "default");
    return q.counts.queued + q.counts.running + q.counts.retrying === 0;
  });
  await page.goto(`${base}/ui`);
  const f = await chartFigures();
  assert.ok(f.total >= 500, `the throughput chart counts the 500 tasks: ${JSON.stringify(f)}`);
  assert.ok(f.okBars >= 1 && f.failBars >= 1 && f.barHeight > 50, JSON.stringify(f));
  assert.ok(f.points >= 1, "the run-time chart has points");
  const caption = await page.textContent(".card[data-queue=default] figure[data-points] figcaption");
  assert.match(caption, /p50 \d/);
  await shot("overview");
  await page.goto(`${base}/ui?range=day`);
  assert.ok((await chartFigures()).total >= 500, "the day view counts them too");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/ui`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no sideways scrolling on a phone: ${overflow}px`);
  await shot("overview-phone");
  await page.goto(`${base}/ui/tasks?state=failed`);
  await shot("tasks-phone");
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.goto(`${base}/ui/workers`);
  await page.waitForSelector("table.workers tbody tr");
  await shot("workers");
  beforeRestart = f;
});

test("history is still there after restarting the api and the workers", async () => {
  assert.ok(beforeRestart, "runs after the charts test");
  await stop("worker");
  await stop("api");
  await startApi();
  startWorker();
  await page.goto(`${base}/ui`);
  assert.match(page.url(), /\/ui$/, "the session survives an api restart (its secret comes from the keys)");
  const f = await chartFigures();
  assert.ok(f.total >= beforeRestart.total, `history kept: ${JSON.stringify(f)} vs ${JSON.stringify(beforeRestart)}`);
  assert.ok(f.okBars >= 1 && f.points >= 1);
  await shot("overview-after-restart");
});

test("schedules list their next fire and can be disabled", async () => {
  const r = await api("POST", "/v1/schedules", { id: "ui-nightly", cron: "0 3 * * *", kind: "sleep", payload: { duration_secs: 1 } });
  assert.ok(r.status < 300, JSON.stringify(r.body));
  await page.goto(`${base}/ui/schedules`);
  await page.waitForSelector("tr[data-schedule=ui-nightly] time");
  await page.getByRole("button", { name: "Disable" }).click();
  await page.waitForSelector("text=Disabled ui-nightly");
  assert.equal((await api("GET", "/v1/schedules/ui-nightly")).body.enabled, false);
  await shot("schedules");
});

test("no API key appears in the api's or the workers' logs", async () => {
  const api = readFileSync(logs.api, "utf8");
  assert.match(api, /dashboard login/, "the api logged the login (by key id)");
  for (const [name, file] of Object.entries(logs)) {
    assert.ok(!readFileSync(file, "utf8").includes(ADMIN_KEY), `${name}'s log holds no key`);
    assert.ok(!readFileSync(file, "utf8").includes("not-the-key-0000000000000"), `${name}'s log holds no failed key`);
  }
  if (process.env.TEST_LOG) process.stderr.write(api);
});
