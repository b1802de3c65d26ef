// Drives the Conversations API with the stock OpenAI Node SDK, as a user
// would, and validates every response against OpenAI's own schemas
// (openapi.yaml's ConversationResource, ConversationItem,
// ConversationItemList, DeletedConversationResource) with Ajv.
// usage: node conversations.mjs http://127.0.0.1:PORT/v1 path/to/openapi.yaml
// Prints TAP-like lines; exits non-zero on the first failure.
import OpenAI from 'openai';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { load as loadYaml } from 'js-yaml';
import Ajv2020 from 'ajv/dist/2020.js';

const [baseURL, specPath] = process.argv.slice(2);
const alice = new OpenAI({ baseURL, apiKey: 'sdk-conv-alice', maxRetries: 0 });
const bob = new OpenAI({ baseURL, apiKey: 'sdk-conv-bob', maxRetries: 0 });
let n = 0;

const spec = loadYaml(readFileSync(specPath, 'utf8'));
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema({ $id: 'openapi', components: spec.components });

const validators = {};
function valid(name, value) {
  validators[name] ??= ajv.getSchema(`openapi#/components/schemas/${name}`);
  const v = validators[name];
  assert.ok(v, `no schema ${name}`);
  if (!v(value)) {
    assert.fail(`${name}: ${JSON.stringify(v.errors.slice(0, 5))}\n${JSON.stringify(value)}`);
  }
  return value;
}

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${++n} - ${name}`);
  } catch (e) {
    console.log(`not ok ${++n} - ${name}\n# ${e.stack || e}`);
    process.exit(1);
  }
}

async function rejects(promise, status) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `an APIError, got ${e}`);
    assert.equal(e.status, status);
    return e;
  }
  assert.fail(`expected HTTP ${status}`);
}

let conv;

await check('conversations.create with metadata and items', async () => {
  conv = valid('ConversationResource', await alice.conversations.create({
    metadata: { topic: 'sdk' },
    items: [
      { type: 'message', role: 'user', content: 'Hello!' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Hi', annotations: [] }] },
      { type: 'function_call', call_id: 'call_1', name: 'lookup', arguments: '{"q":1}' },
      { type: 'function_call_output', call_id: 'call_1', output: '42' },
    ],
  }));
  assert.match(conv.id, /^conv_[A-Za-z0-9]{24}$/);
  assert.equal(conv.object, 'conversation');
  assert.ok(Math.abs(conv.created_at - Date.now() / 1000) < 120);
  assert.deepEqual(conv.metadata, { topic: 'sdk' });
});

await check('conversations.retrieve', async () => {
  const c = valid('ConversationResource', await alice.conversations.retrieve(conv.id));
  assert.deepEqual(c, conv);
  await rejects(bob.conversations.retrieve(conv.id), 404);
});

await check('conversations.update', async () => {
  const c = valid('ConversationResource', await alice.conversations.update(conv.id, { metadata: { topic: 'new' } }));
  assert.deepEqual(c.metadata, { topic: 'new' });
  const e = await rejects(alice.conversations.update(conv.id, { metadata: { k: 'x'.repeat(513) } }), 400);
  assert.ok(e instanceof OpenAI.BadRequestError);
});

let added;

await check('conversations.items.create', async () => {
  added = valid('ConversationItemList', await alice.conversations.items.create(conv.id, {
    items: [
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'How are you?' }] },
      { type: 'message', role: 'developer', content: 'Be brief.' },
    ],
  }));
  assert.equal(added.object, 'list');
  assert.equal(added.data.length, 2);
  for (const item of added.data) valid('ConversationItem', item);
  assert.match(added.first_id, /^msg_/);
  assert.equal(added.first_id, added.data[0].id);
  assert.equal(added.last_id, added.data[1].id);
  assert.equal(added.has_more, false);
  assert.deepEqual(added.data[0].content, [{ type: 'input_text', text: 'How are you?' }]);
});

await check('conversations.items.list (desc by default) and retrieve', async () => {
  const page = await alice.conversations.items.list(conv.id);
  // the page object keeps only what pagination needs: check the raw body
  const raw = await (await alice.conversations.items.list(conv.id).asResponse()).json();
  valid('ConversationItemList', raw);
  assert.deepEqual(raw.data, page.data);
  assert.equal(raw.first_id, page.data[0].id);
  assert.equal(raw.last_id, page.data[5].id);
  assert.deepEqual(page.data.map((i) => i.type),
    ['message', 'message', 'function_call_output', 'function_call', 'message', 'message']);
  assert.equal(page.data[0].id, added.last_id);
  assert.equal(page.data[5].content[0].type, 'input_text');
  assert.equal(page.data[4].content[0].type, 'output_text');
  assert.match(page.data[3].id, /^fc_/);
  assert.equal(page.data[3].status, 'completed');
  for (const item of page.data) {
    const got = valid('ConversationItem', await alice.conversations.items.retrieve(item.id, { conversation_id: conv.id }));
    assert.deepEqual(got, item);
  }
});

await check('conversations.items.list auto-pagination over several pages', async () => {
  const c = await alice.conversations.create({});
  for (let i = 0; i < 45; i += 15) {
    await alice.conversations.items.create(c.id, {
      items: [...Array(15).keys()].map((k) => ({ role: 'user', content: `m${i + k}` })),
    });
  }
  const first = await (await alice.conversations.items.list(c.id, { limit: 10 }).asResponse()).json();
  valid('ConversationItemList', first);
  assert.equal(first.has_more, true);
  const seen = [];
  for await (const item of alice.conversations.items.list(c.id, { limit: 10 })) {
    valid('ConversationItem', item);
    seen.push(item.content[0].text);
  }
  assert.deepEqual(seen, [...Array(45).keys()].reverse().map((i) => `m${i}`));
  const asc = [];
  for await (const item of alice.conversations.items.list(c.id, { limit: 7, order: 'asc', include: ['message.input_image.image_url'] })) {
    asc.push(item.content[0].text);
  }
  assert.deepEqual(asc, [...Array(45).keys()].map((i) => `m${i}`));
  await alice.conversations.delete(c.id);
});

await check('conversations.items.delete answers the conversation', async () => {
  const c = valid('ConversationResource', await alice.conversations.items.delete(added.first_id, { conversation_id: conv.id }));
  assert.equal(c.id, conv.id);
  assert.equal(c.object, 'conversation');
  await rejects(alice.conversations.items.retrieve(added.first_id, { conversation_id: conv.id }), 404);
});

await check('conversations.delete', async () => {
  const d = valid('DeletedConversationResource', await alice.conversations.delete(conv.id));
  assert.deepEqual(d, { id: conv.id, object: 'conversation.deleted', deleted: true });
  const e = await rejects(alice.conversations.retrieve(conv.id), 404);
  assert.ok(e instanceof OpenAI.NotFoundError);
  await rejects(alice.conversations.items.list(conv.id), 404);
});

console.log(`1..${n}`);
