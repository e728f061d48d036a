// Runs Wapio's Postman collection (seed 004, unchanged) with newman against Wharf and judges
// every answer: the documented success code, or what expected.json says (with why), and the
// seed's error envelope on every error. Prints one line `wapio-conformance: N passed, N failed`
// and exits 1 on any failure. Started by run.sh; see docs/api.md, "Wapio conformance".
//
// Without WAPIO_BASE_URL it starts a fresh `wharf serve` (emulator, new SQLite file, an account
// made with `wharf accounts create --json`). With WAPIO_BASE_URL and WAPIO_TOKEN (a PAT) it
// runs against that server, which must run the emulator with its control routes; the sessions
// it creates there are deleted at the end.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const require = createRequire(import.meta.url);
const collectionFile =
  process.env.WAPIO_COLLECTION || path.join(root, "../shared/seeds/004_0944628b54915536.txt");
const verbose = process.argv.includes("--verbose");

/** Every request of the collection by "Folder / Name", with its documented examples. */
function requestsOf(items, folder, out = new Map()) {
  for (const item of items) {
    if (item.item) {
      requestsOf(item.item, folder ? `${folder} / ${item.name}` : item.name, out);
    } else {
      const key = `${folder} / ${item.name}`;
      if (out.has(key)) throw new Error(`two requests are named ${key}`);
      out.set(key, item);
    }
  }
  return out;
}

let newman, collection, environment, expected, requests;

/** Reads newman, the collection and the repo's two files, and checks expected.json. */
function load() {
  newman = require(process.env.WAPIO_NEWMAN || path.join(root, ".ci/node/node_modules/newman"));
  collection = JSON.parse(fs.readFileSync(collectionFile, "utf8"));
  environment = JSON.parse(fs.readFileSync(path.join(here, "environment.json"), "utf8"));
  expected = JSON.parse(fs.readFileSync(path.join(here, "expected.json"), "utf8"));
  requests = requestsOf(collection.item, "");
  for (const key of [...Object.keys(expected.requests), ...expected.not_served.requests]) {
    if (!requests.has(key)) throw new Error(`expected.json names ${key}, which the collection does not have`);
  }
  // A status outside the documented ones is expected only of a placeholder body, naming its field.
  for (const [key, rule] of Object.entries(expected.requests)) {
    const documented = (requests.get(key).response ?? []).map((r) => r.code);
    if (!rule.why) throw new Error(`expected.json: ${key} says no why`);
    if (rule.status && !documented.includes(rule.status) && !rule.field) {
      throw new Error(`expected.json: ${key} expects ${rule.status}, undocumented, without a field`);
    }
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

let serverLog = null;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `wharf serve` on a fresh SQLite file; returns its URL, a PAT and a stop function. */
async function startServer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wapio-conformance-"));
  const bin = path.resolve(process.env.WHARF_BIN || path.join(root, "target/debug/wharf"));
  const db = `sqlite://${path.join(dir, "wharf.db")}`;
  // The server's directory is its cwd, so no wharf.toml of the caller's is read.
  const opts = { cwd: dir, encoding: "utf8", env: { ...process.env, WHARF_LOG: "warn" } };
  const account = JSON.parse(
    execFileSync(bin, ["--database-url", db, "accounts", "create", "--name", "wapio-conformance", "--json"], opts),
  );
  const port = await freePort();
  const logFile = path.join(dir, "server.log");
  const log = fs.openSync(logFile, "w");
  const child = spawn(
    bin,
    ["--database-url", db, "serve", "--listen", `127.0.0.1:${port}`, "--default-engine", "emulator"],
    { ...opts, stdio: ["ignore", log, log] },
  );
  let exited = null;
  child.on("exit", (code, signal) => (exited = signal || code));
  const baseUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (exited !== null) throw new Error(`wharf serve exited (${exited}):\n${fs.readFileSync(logFile, "utf8")}`);
    try {
      if ((await fetch(`${baseUrl}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i > 300) throw new Error("wharf serve did not become ready in 30 s");
    await sleep(100);
  }
  // Stops the server; its directory (database, log) is kept when `keep` (a failed run).
  const stop = async (keep) => {
    if (exited === null) {
      child.kill("SIGTERM");
      for (let i = 0; exited === null && i < 100; i++) await sleep(100);
      if (exited === null) child.kill("SIGKILL");
    }
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  };
  return { baseUrl, token: account.pat, stop, logFile };
}

/** A call to Wharf outside the collection (setup); throws unless the status is `want`. */
function caller(baseUrl, token) {
  return async (method, route, body, want) => {
    const res = await fetch(baseUrl + route, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== want) throw new Error(`setup: ${method} ${route} answered ${res.status}, not ${want}: ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

/** Creates what the collection's variables name: sessions in the right states, messages. */
async function setUp(api, env) {
  const keys = {};
  const session = async (label) => {
    const created = await api("POST", "/v1/whatsapp-sessions", { label, engine: "emulator" }, 201);
    keys[created.session.session_id] = created.session_api_key.raw;
    return created.session.session_id;
  };
  const connected = async (label) => {
    const id = await session(label);
    await api("POST", `/v1/whatsapp-sessions/${id}/connect`, undefined, 200);
    await api("POST", `/emulator/sessions/${id}/scan`, {}, 200);
    return id;
  };
  const main = await connected("wapio-conformance");
  const created = [main, await connected("wapio-conformance: disconnected by the run")];
  created.push(await session("wapio-conformance: deleted by the run"));
  const send = async (to, text) =>
    (await api("POST", "/api/send-message", { session_id: main, to, text }, 202)).message_id;
  const settled = async (id, status) => {
    for (let i = 0; i < 300; i++) {
      const info = await api("GET", `/api/messages/${id}/info`, undefined, 200);
      if (info.status === status || (status === "sent" && ["delivered", "read"].includes(info.status))) return;
      await sleep(100);
    }
    throw new Error(`setup: message ${id} did not become ${status}`);
  };
  const message = await send(env.recipientPhone, "wapio-conformance: a sent message");
  const revocable = await send(env.recipientPhone, "wapio-conformance: a message to revoke");
  const unreachable = "+15550109999";
  await api("POST", `/emulator/sessions/${main}/contacts`, { phone: unreachable, on_whatsapp: false }, 204);
  const failed = await send(unreachable, "wapio-conformance: a message that fails");
  await settled(message, "sent");
  await settled(revocable, "sent");
  await settled(failed, "failed");
  // Contacts and Groups act on the session of the key (Wapio's paths name no session). A
  // session of their own, as the collection regenerates the key of {{sessionId}}: the contact
  // the collection reads is in its phone's address book with a picture, and its group (with a
  // picture and an invite code) exists.
  const social = await connected("wapio-conformance: contacts and groups");
  created.push(social);
  await api(
    "POST",
    `/emulator/sessions/${social}/contacts`,
    { phone: env.phone, name: "wapio-conformance contact", picture_url: "https://example.com/contact.jpg" },
    204,
  );
  const asSession = caller(env.baseUrl, keys[social]);
  const group = (await asSession("POST", "/api/groups", { subject: "wapio-conformance", participants: [env.phone] }, 201))
    .group.jid;
  await api("POST", `/emulator/sessions/${social}/groups/${group}/picture`, { url: "https://example.com/group.jpg" }, 204);
  const invite = (await asSession("GET", `/api/groups/${group}/invite-link`, undefined, 200)).invite_code;
  Object.assign(env, {
    sessionApiKey: keys[social],
    groupJid: group,
    inviteCode: invite,
    sessionId: main,
    messageId: message,
    disconnectableSessionId: created[1],
    deletableSessionId: created[2],
    revocableMessageId: revocable,
    failedMessageId: failed,
  });
  return created;
}

/** The in-memory collection newman runs: the seed's JSON, plus (never written back) a
 * pre-request script on the requests expected.json gives other variables, path variables
 * (`:phone`) the collection leaves empty filled from the environment's value of that name, and
 * each request's "Folder / Name" as its id. */
function prepared(env) {
  const copy = structuredClone(collection);
  const walk = (items, folder) => {
    for (const item of items) {
      if (item.item) {
        walk(item.item, folder ? `${folder} / ${item.name}` : item.name);
        continue;
      }
      const key = `${folder} / ${item.name}`;
      item.id = key;
      for (const variable of item.request.url?.variable ?? []) {
        if (variable.value === "" && env[variable.key] !== undefined) variable.value = env[variable.key];
      }
      const vars = expected.requests[key]?.variables;
      if (vars) {
        const exec = Object.entries(vars).map(
          ([name, from]) => `pm.variables.set(${JSON.stringify(name)}, pm.environment.get(${JSON.stringify(from)}));`,
        );
        // Local variables outlive their request in newman: each is unset once answered.
        const unset = Object.keys(vars).map((name) => `pm.variables.unset(${JSON.stringify(name)});`);
        item.event = [
          ...(item.event ?? []),
          { listen: "prerequest", script: { type: "text/javascript", exec } },
          { listen: "test", script: { type: "text/javascript", exec: unset } },
        ];
      }
    }
  };
  walk(copy.item, "");
  return copy;
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** What is wrong with one answer, or null. */
function judge(key, status, text) {
  const item = requests.get(key);
  const documented = (item.response ?? []).map((r) => r.code);
  const body = parse(text);
  const rule = expected.requests[key];
  let want;
  let field;
  let reason;
  if (expected.not_served.requests.includes(key)) {
    want = [404];
    reason = "not_found";
  } else if (rule?.status) {
    want = [rule.status];
    field = rule.field;
    if (rule.status === 422) reason = "validation_error";
  } else {
    want = documented.filter((c) => c >= 200 && c < 300);
  }
  const codeOk = want.length ? want.includes(status) : status >= 200 && status < 300;
  if (!codeOk) return `answered ${status}, expected ${want.length ? want.join(" or ") : "a 2xx"}`;
  if (status >= 400) {
    // The seed's error envelope: {success: false, message, reason_code, errors: {field: [messages]}}.
    const fields = body?.errors;
    if (
      body?.success !== false ||
      typeof body.message !== "string" ||
      typeof body.reason_code !== "string" ||
      (fields !== undefined &&
        (typeof fields !== "object" ||
          !Object.values(fields).every((m) => Array.isArray(m) && m.every((s) => typeof s === "string"))))
    ) {
      return `error answer outside the seed's envelope`;
    }
    if (reason && body.reason_code !== reason) return `reason_code ${body.reason_code}, expected ${reason}`;
    if (field && !(fields?.[field]?.length > 0)) return `errors does not name ${field}`;
  } else {
    // A success answers at least the keys of the documented example with its code.
    const example = (item.response ?? []).find((r) => r.code === status);
    const shape = example && parse(example.body);
    if (shape && typeof shape === "object" && !Array.isArray(shape)) {
      const missing = Object.keys(shape).filter((k) => !(body && k in body));
      if (missing.length) return `answer lacks ${missing.join(", ")} of the documented example`;
    }
  }
  return null;
}

function run(env) {
  const values = environment.values.map((v) => ({ ...v, value: env[v.key] ?? v.value }));
  return new Promise((resolve, reject) => {
    const results = [];
    newman
      .run({
        collection: prepared(env),
        environment: { ...environment, values },
        reporters: [],
        timeoutRequest: 30000,
      })
      .on("request", (err, args) => {
        const key = args.item.id;
        const line = `${args.request.method} ${args.request.url.toString()}`;
        if (err) results.push({ key, line, problem: `no answer: ${err.message}` });
        else {
          const text = args.response.text();
          const status = args.response.code;
          let problem;
          try {
            problem = judge(key, status, text);
          } catch (e) {
            problem = `could not judge: ${e.message}`;
          }
          results.push({ key, line, status, text, problem });
        }
      })
      .on("done", (err, summary) => {
        if (err) return reject(err);
        // The collection has no tests: a failure here is an error of the runner's scripts.
        for (const f of summary.run.failures) {
          const problem = `script error: ${f.error?.message}`;
          const result = results.find((r) => r.key === f.source?.id);
          if (result) result.problem = result.problem ? `${result.problem}; ${problem}` : problem;
          else results.push({ key: f.source?.id ?? "newman", line: "", problem });
        }
        resolve(results);
      });
  });
}

async function main() {
  load();
  const env = Object.fromEntries(environment.values.map((v) => [v.key, v.value]));
  let server = null;
  if (process.env.WAPIO_BASE_URL) {
    if (!process.env.WAPIO_TOKEN) throw new Error("WAPIO_BASE_URL needs WAPIO_TOKEN (a PAT of the account to test with)");
    env.baseUrl = process.env.WAPIO_BASE_URL.replace(/\/+$/, "");
    env.apiToken = process.env.WAPIO_TOKEN;
  } else {
    server = await startServer();
    serverLog = server.logFile;
    env.baseUrl = server.baseUrl;
    env.apiToken = server.token;
  }
  const api = caller(env.baseUrl, env.apiToken);
  let created = [];
  let failed = 1;
  try {
    created = await setUp(api, env);
    const results = await run(env);
    const seen = new Set(results.map((r) => r.key));
    for (const key of requests.keys()) {
      if (!seen.has(key)) results.push({ key, line: "", problem: "was not run" });
    }
    failed = 0;
    for (const r of results) {
      if (r.problem) failed++;
      if (r.problem || verbose) {
        const detail = r.problem ? ` FAIL: ${r.problem}${r.text ? `: ${r.text.slice(0, 300)}` : ""}` : " ok";
        console.log(`${r.key} (${r.line} -> ${r.status ?? "-"})${detail}`);
      }
    }
    if (failed && server) console.log(`server log (kept): ${server.logFile}`);
    console.log(`wapio-conformance: ${results.length - failed} passed, ${failed} failed`);
    return failed ? 1 : 0;
  } finally {
    if (server) await server.stop(failed > 0);
    else {
      // A server of the user's: remove the sessions this run made.
      for (const id of created) {
        await fetch(`${env.baseUrl}/v1/whatsapp-sessions/${id}`, {
          method: "DELETE",
          headers: { authorization: `Bearer ${env.apiToken}` },
        }).catch(() => {});
      }
    }
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err.stack || String(err));
    if (serverLog) console.error(`server log (kept): ${serverLog}`);
    console.log("wapio-conformance: 0 passed, 1 failed");
    process.exit(1);
  },
);
