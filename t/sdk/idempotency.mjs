// The stock OpenAI Node SDK retrying creates whose response was lost after
// the database committed them (t/017-idempotency.t).
// usage: node idempotency.mjs http://127.0.0.1:PORT/v1
//
// A small HTTP proxy in front of nginx forwards each request, waits for
// nginx's whole answer (so the create is committed), then, for the
// requests chosen to fail, closes the client's connection instead of
// answering: the SDK sees a connection error and retries (2 retries by
// default, POSTs included).  Prints TAP-like lines; exits non-zero on the
// first failure.
import OpenAI from 'openai';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomUUID } from 'node:crypto';

const target = new URL(process.argv[2]);
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

// One HTTP/1.1 message at the head of buf (Content-Length bodies only, as
// undici and nginx send here): its length, or 0 while incomplete.
function messageLength(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return 0;
  const head = buf.subarray(0, end).toString('latin1');
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  const total = end + 4 + (m ? Number(m[1]) : 0);
  return buf.length >= total ? total : 0;
}

// drop(requestHead) decides, once nginx has answered, whether the client
// gets the answer or a closed connection.  Returns { url, seen, dropped }.
async function startProxy(drop) {
  const stats = { seen: [], dropped: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    let inbuf = Buffer.alloc(0);
    let outbuf = Buffer.alloc(0);
    const pending = [];
    client.on('data', (d) => {
      inbuf = Buffer.concat([inbuf, d]);
      let len;
      while ((len = messageLength(inbuf)) > 0) {
        const msg = inbuf.subarray(0, len);
        inbuf = inbuf.subarray(len);
        const head = msg.subarray(0, msg.indexOf('\r\n')).toString('latin1');
        const key = /\r\nidempotency-key:\s*([^\r]*)/i.exec(msg.toString('latin1'));
        stats.seen.push({ head, key: key ? key[1] : null });
        pending.push(head);
        upstream.write(msg);
      }
    });
    upstream.on('data', (d) => {
      outbuf = Buffer.concat([outbuf, d]);
      let len;
      while ((len = messageLength(outbuf)) > 0) {
        const msg = outbuf.subarray(0, len);
        outbuf = outbuf.subarray(len);
        const head = pending.shift();
        if (drop(head)) {
          stats.dropped++;
          client.destroy();
          upstream.destroy();
          return;
        }
        client.write(msg);
      }
    });
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}${target.pathname}`;
  return { url, stats, close: () => server.close() };
}

// The first response to a request whose line starts with `line` is lost.
function dropFirst(line) {
  let done = false;
  return (head) => {
    if (done || !head.startsWith(line)) return false;
    done = true;
    return true;
  };
}

async function listThreads(apiKey) {
  const res = await fetch(`${target.href.replace(/\/$/, '')}/threads?limit=100`, {
    headers: { Authorization: `Bearer ${apiKey}` },
  });
  assert.equal(res.status, 200);
  return (await res.json()).data;
}

await check('the SDK retry with a key stores one thread', async () => {
  const apiKey = `sdk-idem-${randomUUID()}`;
  const proxy = await startProxy(dropFirst('POST /v1/threads '));
  const client = new OpenAI({ baseURL: proxy.url, apiKey });
  const key = randomUUID();
  const { data: thread, response } = await client.beta.threads.create(
    { metadata: { try: 'keyed' }, messages: [{ role: 'user', content: 'once' }] },
    { headers: { 'Idempotency-Key': key } },
  ).withResponse();
  proxy.close();
  assert.equal(proxy.stats.dropped, 1, 'one response was lost');
  const posts = proxy.stats.seen.filter((s) => s.head.startsWith('POST /v1/threads '));
  assert.equal(posts.length, 2, 'the SDK sent the create twice');
  assert.deepEqual(posts.map((s) => s.key), [key, key], 'with the same key');
  assert.equal(response.headers.get('idempotent-replayed'), 'true',
    'the retry got the stored answer');
  const stored = await listThreads(apiKey);
  assert.equal(stored.length, 1, 'exactly one thread is stored');
  assert.equal(stored[0].id, thread.id, 'the one the SDK returned');
  const messages = await client.beta.threads.messages.list(thread.id);
  assert.equal(messages.data.length, 1, 'with its message once');
});

await check('without a key the same fault stores two threads', async () => {
  const apiKey = `sdk-idem-${randomUUID()}`;
  const proxy = await startProxy(dropFirst('POST /v1/threads '));
  const client = new OpenAI({ baseURL: proxy.url, apiKey });
  await client.beta.threads.create({ metadata: { try: 'plain' } });
  proxy.close();
  assert.equal(proxy.stats.dropped, 1);
  assert.equal((await listThreads(apiKey)).length, 2,
    'the duplicate that Idempotency-Key prevents');
});

await check('a message create retried with a key stores one message', async () => {
  const apiKey = `sdk-idem-${randomUUID()}`;
  const direct = new OpenAI({ baseURL: target.href, apiKey, maxRetries: 0 });
  const thread = await direct.beta.threads.create();
  const proxy = await startProxy(dropFirst(`POST /v1/threads/${thread.id}/messages `));
  const client = new OpenAI({ baseURL: proxy.url, apiKey });
  const m = await client.beta.threads.messages.create(thread.id,
    { role: 'user', content: 'just once' },
    { headers: { 'Idempotency-Key': randomUUID() } });
  proxy.close();
  assert.equal(proxy.stats.dropped, 1);
  const list = await direct.beta.threads.messages.list(thread.id);
  assert.deepEqual(list.data.map((x) => x.id), [m.id], 'one message');
});

await check('a reused key with another body is a 422 the SDK does not retry', async () => {
  const apiKey = `sdk-idem-${randomUUID()}`;
  const proxy = await startProxy(() => false);
  const client = new OpenAI({ baseURL: proxy.url, apiKey });
  const key = randomUUID();
  await client.beta.threads.create({ metadata: { a: '1' } }, { headers: { 'Idempotency-Key': key } });
  try {
    await client.beta.threads.create({ metadata: { a: '2' } }, { headers: { 'Idempotency-Key': key } });
    assert.fail('expected a 422');
  } catch (e) {
    assert.ok(e instanceof OpenAI.UnprocessableEntityError, `got ${e}`);
    assert.equal(e.code, 'idempotency_key_reused');
  }
  proxy.close();
  assert.equal(proxy.stats.seen.length, 2, 'sent once each: no retry');
});

console.log(`1..${n}`);
