// Drives the Threads API with the stock OpenAI Node SDK, as a user would.
// usage: node check.mjs http://127.0.0.1:PORT/v1
// Prints TAP-like lines; exits non-zero on the first failure.
import OpenAI from 'openai';
import assert from 'node:assert/strict';

const baseURL = process.argv[2];
const alice = new OpenAI({ baseURL, apiKey: 'sdk-alice', maxRetries: 0 });
const bob = new OpenAI({ baseURL, apiKey: 'sdk-bob', maxRetries: 0 });
let n = 0;

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${++n} - ${name}`);
  } catch (e) {
    console.log(`not ok ${++n} - ${name}\n# ${e.stack || e}`);
    process.exit(1);
  }
}

async function rejects(promise, status, props = {}) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `an APIError, got ${e}`);
    assert.equal(e.status, status);
    for (const [k, v] of Object.entries(props)) assert.equal(e[k], v, k);
    return e;
  }
  assert.fail(`expected HTTP ${status}`);
}

let thread;

await check('create with messages and metadata', async () => {
  thread = await alice.beta.threads.create({
    messages: [
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: [{ type: 'text', text: 'Hi!' }] },
    ],
    metadata: { project: 'sdk' },
    tool_resources: { code_interpreter: { file_ids: ['file-1'] } },
  });
  assert.match(thread.id, /^thread_[A-Za-z0-9]{24}$/);
  assert.equal(thread.object, 'thread');
  assert.ok(Math.abs(thread.created_at - Date.now() / 1000) < 120);
  assert.deepEqual(thread.metadata, { project: 'sdk' });
  assert.deepEqual(thread.tool_resources, { code_interpreter: { file_ids: ['file-1'] } });
});

await check('create with no arguments', async () => {
  const t = await alice.beta.threads.create();
  assert.deepEqual(t.metadata, {});
  assert.deepEqual(t.tool_resources, {});
});

await check('retrieve', async () => {
  const t = await alice.beta.threads.retrieve(thread.id);
  assert.deepEqual(t, thread);
});

await check('update replaces metadata', async () => {
  const t = await alice.beta.threads.update(thread.id, { metadata: { stage: 'two' } });
  assert.deepEqual(t.metadata, { stage: 'two' });
  assert.deepEqual(t.tool_resources, thread.tool_resources);
});

await check('another key sees a 404', async () => {
  await rejects(bob.beta.threads.retrieve(thread.id), 404);
});

await check('validation errors carry param and code', async () => {
  const big = Object.fromEntries([...Array(17).keys()].map((i) => [`k${i}`, 'v']));
  const e = await rejects(alice.beta.threads.create({ metadata: big }), 400,
    { param: 'metadata', code: 'object_above_max_properties', type: 'invalid_request_error' });
  assert.ok(e instanceof OpenAI.BadRequestError);
});

await check('a malformed id is a 400 for thread_id', async () => {
  await rejects(alice.beta.threads.retrieve('nope'), 400, { param: 'thread_id' });
});

await check('the request id is exposed to the SDK', async () => {
  const { response } = await alice.beta.threads.retrieve(thread.id).withResponse();
  assert.match(response.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
});

await check('delete', async () => {
  const d = await alice.beta.threads.delete(thread.id);
  assert.deepEqual(d, { id: thread.id, object: 'thread.deleted', deleted: true });
});

await check('retrieve after delete is a NotFoundError', async () => {
  const e = await rejects(alice.beta.threads.retrieve(thread.id), 404);
  assert.ok(e instanceof OpenAI.NotFoundError);
  assert.equal(e.message, `404 No thread found with id '${thread.id}'.`);
});

await check('a missing key is an AuthenticationError', async () => {
  const anon = new OpenAI({ baseURL, apiKey: 'x', maxRetries: 0,
    defaultHeaders: { Authorization: null } });
  const e = await rejects(anon.beta.threads.create(), 401);
  assert.ok(e instanceof OpenAI.AuthenticationError);
});

await check('messages: create, retrieve, update, delete', async () => {
  const t = await alice.beta.threads.create();
  const m = await alice.beta.threads.messages.create(t.id, { role: 'user', content: 'hi' });
  assert.match(m.id, /^msg_[A-Za-z0-9]{24}$/);
  assert.equal(m.thread_id, t.id);
  assert.deepEqual(m.content, [{ type: 'text', text: { value: 'hi', annotations: [] } }]);
  assert.deepEqual(await alice.beta.threads.messages.retrieve(m.id, { thread_id: t.id }), m);
  const u = await alice.beta.threads.messages.update(m.id, { thread_id: t.id, metadata: { x: 'y' } });
  assert.deepEqual(u.metadata, { x: 'y' });
  const d = await alice.beta.threads.messages.delete(m.id, { thread_id: t.id });
  assert.deepEqual(d, { id: m.id, object: 'thread.message.deleted', deleted: true });
  await rejects(alice.beta.threads.messages.retrieve(m.id, { thread_id: t.id }), 404);
});

await check('auto-pagination walks every message exactly once', async () => {
  const t = await alice.beta.threads.create({
    messages: [...Array(32).keys()].map((i) => ({ role: 'user', content: `m${i}` })),
  });
  for (let i = 32; i < 62; i++) {
    await alice.beta.threads.messages.create(t.id, { role: 'assistant', content: `m${i}` });
  }
  const seen = [];
  for await (const m of alice.beta.threads.messages.list(t.id, { limit: 20 })) {
    seen.push(m.content[0].text.value);
  }
  assert.equal(seen.length, 62);
  assert.deepEqual(seen, [...Array(62).keys()].reverse().map((i) => `m${i}`));
  const asc = [];
  for await (const m of alice.beta.threads.messages.list(t.id, { limit: 7, order: 'asc' })) {
    asc.push(m.content[0].text.value);
  }
  assert.deepEqual(asc, [...Array(62).keys()].map((i) => `m${i}`));
});

console.log(`1..${n}`);
