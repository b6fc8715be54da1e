// End-to-end: a real cmi5 AU (@xapi/cmi5, unmodified) in headless Chromium, launched by a test
// LMS through lrsgate, in front of the project's stand-in LRS (it serves State and Agent Profile,
// which the AU needs at launch).
//
// The LMS writes LMS.LaunchData and `launched` straight to the LRS, asks lrsgate for a token with
// cmi5 delivery and opens the launch URL (endpoint = lrsgate's edge, fetch = the fetch URL). The
// AU, served from another origin, fetches its token, reads LaunchData and its preferences, sends
// initialized, completed, passed and, when told, terminated. Then: what the LRS holds, a second
// fetch (error-code 1), another learner's statement with this token (403), a statement after
// terminated (403) and after the grace period (401).
//
// Needs: target/debug/{lrsgate,standin-lrs} (built by `cargo build --bins` in tests/run.sh), Debian's chromium, and
// `npm ci` here. Run by tests/run.sh.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, writeFileSync, createWriteStream } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const bin = process.env.LRSGATE_BIN_DIR || join(root, "target", "debug");
const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

const LRS_USER = "lrs-user";
const LRS_PASSWORD = "lrs-password-e2e";
const API_KEY = "lrsk_e2e_test_key_0123456789";
const SECRET = "e2e-signing-secret-0123456789abcdef";
const GRACE_SECONDS = 2;
const SESSION_EXT = "https://w3id.org/xapi/cmi5/context/extensions/sessionid";
const VERBS = "http://adlnet.gov/expapi/verbs/";

const children = [];
const cleanups = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  children.push(child);
  return child;
}

async function waitFor(what, probe, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const basic = (user, pass) => "Basic " + Buffer.from(`${user}:${pass}`).toString("base64");
const lrsAuth = basic(LRS_USER, LRS_PASSWORD);

async function startStandIn() {
  const child = start(join(bin, "standin-lrs"), ["--listen", "127.0.0.1:0", "--credential", `${LRS_USER}:${LRS_PASSWORD}`]);
  const [line] = await once(child.stdout, "data");
  const port = Number(String(line).trim().split(":").pop());
  assert.ok(port > 0, `stand-in port from ${line}`);
  return port;
}

async function startGate(dir, lrsPort, auOrigin) {
  const [edge, token, metrics] = [await freePort(), await freePort(), await freePort()];
  const hash = "sha256:" + createHash("sha256").update(API_KEY).digest("hex");
  writeFileSync(
    join(dir, "lrsgate.toml"),
    `[listen]
edge = "127.0.0.1:${edge}"
token_service = "127.0.0.1:${token}"
metrics = "127.0.0.1:${metrics}"
[upstream]
health_check_interval_seconds = 3600
[server]
threads = 2
pid_file = "${join(dir, "lrsgate.pid")}"
upgrade_sock = "${join(dir, "upgrade.sock")}"
grace_period_seconds = 1
graceful_shutdown_timeout_seconds = 1
`,
  );
  writeFileSync(
    join(dir, "tenants.toml"),
    `[[tenant]]
id = "e2e"
hosts = ["127.0.0.1"]
public_origin = "http://127.0.0.1:${edge}"
[tenant.sessions]
terminated_grace_seconds = ${GRACE_SECONDS}
[tenant.cors]
allowed_origins = ["${auOrigin}"]
[tenant.upstream]
nodes = ["http://127.0.0.1:${lrsPort}/xapi"]
username = "${LRS_USER}"
password = "${LRS_PASSWORD}"
[tenant.signing]
secret = "${SECRET}"
[tenant.lms]
api_key_hashes = ["${hash}"]
`,
  );
  const log = createWriteStream(join(dir, "lrsgate.log"));
  const child = start(join(bin, "lrsgate"), ["serve", "-c", join(dir, "lrsgate.toml")], {
    env: { ...process.env, RUST_LOG: "warn,lrsgate=info" },
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  await waitFor("lrsgate", async () => (await fetch(`http://127.0.0.1:${edge}/healthz`)).ok && (await fetch(`http://127.0.0.1:${token}/healthz`)).ok);
  return { edge, token, log: () => readFileSync(join(dir, "lrsgate.log"), "utf8") };
}

/** The AU's origin: a static server for the AU page and the library's browser build. */
async function startAuServer() {
  const files = {
    "/au/index.html": ["text/html", readFileSync(join(here, "au", "index.html"))],
    "/vendor/cmi5.umd.js": ["text/javascript", readFileSync(join(here, "node_modules", "@xapi", "cmi5", "dist", "Cmi5.umd.js"))],
  };
  const server = createServer((req, res) => {
    const file = files[new URL(req.url, "http://x").pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": file[0] }).end(file[1]);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => server.close());
  // "localhost", not 127.0.0.1: another host and port than the edge's, so every call is cross-origin.
  return `http://localhost:${server.address().port}`;
}

async function lrsStatements(lrsPort) {
  const res = await fetch(`http://127.0.0.1:${lrsPort}/_standin/requests`);
  const requests = await res.json();
  return requests
    .filter((r) => r.method === "POST" && r.target.startsWith("/xapi/statements"))
    .flatMap((r) => {
      const body = JSON.parse(Buffer.from(r.body_base64, "base64").toString("utf8"));
      return (Array.isArray(body) ? body : [body]).map((statement) => ({ statement, authorization: r.headers.find(([k]) => k === "authorization")?.[1] }));
    });
}

test("a real cmi5 AU completes a launch through lrsgate in headless Chromium", { timeout: 120000 }, async (t) => {
  t.after(async () => {
    for (const c of children) c.kill("SIGKILL");
    for (const c of cleanups) await c();
  });
  const dir = mkdtempSync(join(tmpdir(), "lrsgate-e2e-"));
  const lrsPort = await startStandIn();
  const auOrigin = await startAuServer();
  const gate = await startGate(dir, lrsPort, auOrigin);
  const edgeOrigin = `http://127.0.0.1:${gate.edge}`;

  // The LMS: the learner, a registration, this launch's session, the publisher's AU id.
  const actor = { objectType: "Agent", account: { homePage: "https://lms.example", name: "learner-e2e" } };
  const registration = randomUUID();
  const sessionId = randomUUID();
  const activityId = `https://lms.example/course/1/au/1/launch/${registration}`;
  const publisherId = "https://publisher.example/course/1/au/1";
  const launchData = {
    contextTemplate: {
      contextActivities: { grouping: [{ id: publisherId }] },
      extensions: { [SESSION_EXT]: sessionId },
    },
    launchMode: "Normal",
    moveOn: "CompletedAndPassed",
    masteryScore: 0.8,
  };
  const stateQuery = new URLSearchParams({ activityId, agent: JSON.stringify(actor), registration, stateId: "LMS.LaunchData" });
  const wrote = await fetch(`http://127.0.0.1:${lrsPort}/xapi/activities/state?${stateQuery}`, {
    method: "PUT",
    headers: { Authorization: lrsAuth, "Content-Type": "application/json", "X-Experience-API-Version": "1.0.3" },
    body: JSON.stringify(launchData),
  });
  assert.equal(wrote.status, 204, "the LMS writes LMS.LaunchData");
  const launched = {
    id: randomUUID(),
    actor,
    verb: { id: `${VERBS}launched` },
    object: { id: activityId, objectType: "Activity" },
    context: {
      registration,
      contextActivities: { grouping: [{ id: publisherId }], category: [{ id: "https://w3id.org/xapi/cmi5/context/categories/cmi5" }] },
      extensions: { [SESSION_EXT]: sessionId, "https://w3id.org/xapi/cmi5/context/extensions/launchmode": "Normal" },
    },
    timestamp: new Date().toISOString(),
  };
  const sent = await fetch(`http://127.0.0.1:${lrsPort}/xapi/statements`, {
    method: "POST",
    headers: { Authorization: lrsAuth, "Content-Type": "application/json", "X-Experience-API-Version": "1.0.3" },
    body: JSON.stringify(launched),
  });
  assert.equal(sent.status, 200, "the LMS sends launched");

  const issued = await fetch(`http://127.0.0.1:${gate.token}/auth/token`, {
    method: "POST",
    headers: { Host: "127.0.0.1", Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ actor, registration, activity_id: activityId, session_id: sessionId, publisher_id: publisherId, delivery: "cmi5" }),
  });
  const issuedBody = await issued.json();
  assert.equal(issued.status, 200, JSON.stringify(issuedBody));
  const fetchUrl = issuedBody.fetch_url;
  assert.ok(fetchUrl.startsWith(`${edgeOrigin}/cmi5/fetch/`), fetchUrl);

  const launchUrl = new URL(`${auOrigin}/au/index.html`);
  launchUrl.searchParams.set("endpoint", `${edgeOrigin}/xapi/`);
  launchUrl.searchParams.set("fetch", fetchUrl);
  launchUrl.searchParams.set("actor", JSON.stringify(actor));
  launchUrl.searchParams.set("registration", registration);
  launchUrl.searchParams.set("activityId", activityId);

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  cleanups.push(() => browser.close());
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  const fetched = page.waitForResponse((res) => res.url() === fetchUrl && res.request().method() === "POST");
  await page.goto(launchUrl.toString());
  const stateOf = () => page.evaluate(() => [window.auState, window.auError]);
  await waitFor("the AU to pass", async () => {
    const [state, error] = await stateOf();
    assert.notEqual(state, "error", `the AU failed: ${error}\nconsole: ${consoleErrors.join("\n")}\nlrsgate:\n${gate.log()}`);
    return state === "awaiting-terminate";
  });
  const authToken = (await (await fetched).json())["auth-token"];
  assert.ok(authToken, "the AU fetched its auth-token through the fetch URL");

  // Mid-session: another learner's statement sent with this token is refused and never stored.
  const before = (await lrsStatements(lrsPort)).length;
  const impostor = {
    id: randomUUID(),
    actor: { objectType: "Agent", account: { homePage: "https://lms.example", name: "someone-else" } },
    verb: { id: `${VERBS}experienced` },
    object: { id: activityId },
    context: { registration, contextActivities: { grouping: [{ id: publisherId }] }, extensions: { [SESSION_EXT]: sessionId } },
  };
  const post = (statement) =>
    fetch(`${edgeOrigin}/xapi/statements`, {
      method: "POST",
      headers: { Authorization: `Basic ${authToken}`, "Content-Type": "application/json", "X-Experience-API-Version": "1.0.3" },
      body: JSON.stringify(statement),
    });
  const refused = await post(impostor);
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).error, "actor_mismatch");

  await page.evaluate(() => window.finish());
  await waitFor("the AU to terminate", async () => {
    const [state, error] = await stateOf();
    assert.notEqual(state, "error", `the AU failed: ${error}`);
    return state === "terminated";
  });

  // What the LRS holds: the LMS's launched, then the AU's four statements, in order, for this
  // learner, registration and session; the AU's arrived with the LRS's credential, not the token.
  const held = await lrsStatements(lrsPort);
  assert.equal(held.length, before + 1, "only terminated was added after the impostor");
  const verbs = held.map(({ statement }) => statement.verb.id.replace(VERBS, ""));
  assert.deepEqual(verbs, ["launched", "initialized", "completed", "passed", "terminated"]);
  for (const { statement, authorization } of held.slice(1)) {
    assert.deepEqual(statement.actor.account, actor.account, "actor");
    assert.equal(statement.context.registration, registration, "registration");
    assert.equal(statement.context.extensions[SESSION_EXT], sessionId, "session id");
    assert.ok(statement.context.contextActivities.grouping.some((g) => g.id === publisherId), "publisher id in grouping");
    assert.equal(statement.object.id, activityId, "object");
    assert.equal(authorization, lrsAuth, "the LRS sees its own credential");
  }

  // A second fetch: error-code 1, no token.
  const second = await fetch(fetchUrl, { method: "POST" });
  assert.equal(second.status, 200);
  const secondBody = await second.json();
  assert.equal(secondBody["error-code"], "1");
  assert.equal(secondBody["auth-token"], undefined);

  // After terminated nothing is recorded; after the grace period the token is dead.
  const late = { ...impostor, id: randomUUID(), actor };
  const afterTerminated = await post(late);
  assert.equal(afterTerminated.status, 403);
  assert.equal((await afterTerminated.json()).error, "cmi5_after_terminated");
  await new Promise((r) => setTimeout(r, GRACE_SECONDS * 1000 + 300));
  const afterGrace = await post({ ...late, id: randomUUID() });
  assert.equal(afterGrace.status, 401);
  assert.equal((await afterGrace.json()).error, "session_ended");
  assert.equal((await lrsStatements(lrsPort)).length, held.length, "nothing refused reached the LRS");
  assert.deepEqual(consoleErrors.filter((e) => !e.includes("404")), [], "the AU logged no errors");
});
