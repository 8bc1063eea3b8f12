// openai_test.mjs — the official `openai` SDK, unchanged, against `variet
// serve`: list models, one chat completion, one streamed chat completion,
// a legacy completion, and the SDK's typed errors for an unknown role (404)
// and a wrong key (401). Reads VARIET_URL (".../v1"), VARIET_KEY and
// VARIET_ROLE (default "fast"); prints one line per check and a summary;
// exits 1 if any check failed. scripts/openai-test.sh sets everything up.
import OpenAI from "openai";

const baseURL = process.env.VARIET_URL;
const apiKey = process.env.VARIET_KEY;
const role = process.env.VARIET_ROLE || "fast";
if (!baseURL || !apiKey) {
  console.error("openai_test: set VARIET_URL (http://127.0.0.1:PORT/v1) and VARIET_KEY");
  process.exit(2);
}

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
const messages = [{ role: "user", content: "Say hello." }];
let passed = 0;
let failed = 0;

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

async function check(name, fn) {
  const t0 = performance.now();
  try {
    const note = await fn();
    passed++;
    console.log(`ok   ${name} (${(performance.now() - t0).toFixed(0)} ms)${note ? ": " + note : ""}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

await check("models.list", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  expect(ids.includes(role), `role '${role}' in [${ids}]`);
  return ids.join(", ");
});

await check("chat.completions.create", async () => {
  const r = await client.chat.completions.create({ model: role, messages, max_tokens: 8, temperature: 0 });
  expect(r.object === "chat.completion", `object chat.completion, got ${r.object}`);
  expect(r.choices.length === 1, "one choice");
  expect(typeof r.choices[0].message.content === "string", "message content");
  expect(r.usage && r.usage.completion_tokens >= 1, "usage.completion_tokens >= 1");
  expect(r.model === role, `model is the role '${role}', got '${r.model}'`);
  return `${r.usage.completion_tokens} tokens, model ${r.model}`;
});

await check("chat.completions.create stream", async () => {
  const stream = await client.chat.completions.create({
    model: role,
    messages,
    max_tokens: 16,
    temperature: 0,
    stream: true,
    ignore_eos: true, // llama-server extension, passed through
  });
  let chunks = 0;
  let content = 0;
  let finish = null;
  for await (const c of stream) {
    chunks++;
    expect(c.model === role, `chunk model is the role '${role}', got '${c.model}'`);
    const ch = c.choices[0];
    if (ch && ch.delta && typeof ch.delta.content === "string" && ch.delta.content.length) content++;
    if (ch && ch.finish_reason) finish = ch.finish_reason;
  }
  expect(chunks >= 2, `at least 2 chunks, got ${chunks}`);
  expect(content >= 2, `at least 2 content deltas, got ${content}`);
  expect(finish === "length", `finish_reason length, got ${finish}`);
  return `${chunks} chunks`;
});

await check("completions.create", async () => {
  const r = await client.completions.create({ model: role, prompt: "Once upon a time", max_tokens: 4 });
  expect(r.choices.length === 1 && typeof r.choices[0].text === "string", "one text choice");
});

await check("unknown role -> NotFoundError", async () => {
  try {
    await client.chat.completions.create({ model: "no-such-role", messages, max_tokens: 4 });
  } catch (e) {
    expect(e instanceof OpenAI.NotFoundError, `NotFoundError, got ${e && e.constructor && e.constructor.name}`);
    expect(e.status === 404, "status 404");
    expect(/no-such-role/.test(e.message) && e.message.includes(role), `message naming the roles: ${e.message}`);
    return e.message;
  }
  throw new Error("no error for an unknown role");
});

await check("wrong key -> AuthenticationError", async () => {
  const bad = new OpenAI({ baseURL, apiKey: apiKey + "-wrong", maxRetries: 0, timeout: 10_000 });
  try {
    await bad.models.list();
  } catch (e) {
    const got = e && e.constructor && e.constructor.name;
    expect(e instanceof OpenAI.AuthenticationError, `AuthenticationError, got ${got}`);
    expect(e.status === 401, "status 401");
    return e.message;
  }
  throw new Error("no error for a wrong key");
});

console.log(`openai: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
