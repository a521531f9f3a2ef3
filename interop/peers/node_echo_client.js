'use strict';
// A Node.js `ws` client against any sockjet echo server (interop/tests/uring.rs); the
// same as python_echo_client.py (read its docstring).
//
//   node node_echo_client.js ws://127.0.0.1:PORT/echo deflate|plain

const crypto = require('crypto');
const WebSocket = require('ws');

const TIMEOUT_MS = 10000;
const MIB = 1 << 20;

function emit(observation) {
  process.stdout.write(JSON.stringify(observation) + '\n');
}

function fail(message) {
  process.stderr.write(`node echo client: ${message}\n`, () => process.exit(1));
}

function pattern(length, mul, add, mod) {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * mul + add) % mod;
  return bytes;
}

// Incompressible bytes: SHA-1 of "seed:0", "seed:1", ... concatenated.
function noise(length, seed) {
  const blocks = [];
  for (let i = 0; i * 20 < length; i++) {
    blocks.push(crypto.createHash('sha1').update(`${seed}:${i}`).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}

// [name, message]; an array is one fragmented message. The same names, in the same
// order, are in python_echo_client.py and interop/src/echo_client.rs.
function messages() {
  return [
    ['text', 'héllo from node ✓ 🦀'],
    ['binary', Buffer.from([...Array(256).keys()])],
    ['empty_text', ''],
    ['big_binary', pattern(MIB, 31, 7, 251)],
    ['big_text', 'ö🦀'.repeat(50000)],
    ['noise', noise(256 * 1024, 'node')],
    ['fragmented_text', ['frag-one ', 'frag-twö ', '', 'frag-three 🦀']],
    ['fragmented_binary', [pattern(64 * 1024, 7, 1, 256), noise(1000, 'frag')]],
  ];
}

function joined(message) {
  if (!Array.isArray(message)) return message;
  return typeof message[0] === 'string' ? message.join('') : Buffer.concat(message);
}

function equal(echo, isBinary, expected) {
  if (typeof expected === 'string') return !isBinary && echo.toString('utf8') === expected;
  return isBinary && Buffer.compare(echo, expected) === 0;
}

async function main(url, compression) {
  const ws = new WebSocket(url, { perMessageDeflate: compression ? { threshold: 0 } : false, maxPayload: 4 * MIB });
  const queue = [];
  let waiter = null;
  let closeEvent = null;
  const wake = () => { if (waiter) { const w = waiter; waiter = null; w(); } };
  ws.on('message', (data, isBinary) => { queue.push([data, isBinary]); wake(); });
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => {
    closeEvent = { code, reason: reason.toString() };
    wake();
    resolve(closeEvent);
  }));
  ws.on('error', (error) => fail(`error: ${error.message}`));
  const within = (promise, what) => {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT_MS);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  };
  const recv = () => {
    const next = () => {
      if (queue.length > 0) return Promise.resolve(queue.shift());
      if (closeEvent) return Promise.reject(new Error(`closed: ${JSON.stringify(closeEvent)}`));
      return new Promise((resolve) => { waiter = resolve; }).then(next);
    };
    return within(next(), 'an echo');
  };
  const send = (data, options) => new Promise((resolve, reject) => {
    ws.send(data, options, (error) => (error ? reject(error) : resolve()));
  });

  await within(new Promise((resolve) => ws.once('open', resolve)), 'the handshake');
  emit({ event: 'open', extensions: ws.extensions });
  for (const [name, message] of messages()) {
    if (Array.isArray(message)) {
      const binary = typeof message[0] !== 'string';
      for (let i = 0; i < message.length; i++) {
        await send(message[i], { binary, fin: i === message.length - 1 });
      }
    } else {
      await send(message, { binary: typeof message !== 'string' });
    }
    const [echo, isBinary] = await recv();
    emit({ event: 'echo', name, type: isBinary ? 'binary' : 'text', equal: equal(echo, isBinary, joined(message)) });
  }
  // 100 small messages in flight at once: all back, in order.
  for (let i = 0; i < 100; i++) ws.send(`pipelined ${i}`);
  let inOrder = true;
  for (let i = 0; i < 100; i++) {
    const [echo, isBinary] = await recv();
    inOrder = inOrder && !isBinary && echo.toString() === `pipelined ${i}`;
  }
  emit({ event: 'pipelined', in_order: inOrder });
  const pong = within(new Promise((resolve) => ws.once('pong', resolve)), 'the pong');
  ws.ping('node ping');
  const payload = await pong;
  if (payload.toString() !== 'node ping') fail(`pong payload ${payload.toString()}`);
  emit({ event: 'pong' });
  ws.close(1000, 'done');
  const { code, reason } = await within(closed, 'the close');
  emit({ event: 'closed', code, reason });
}

const [url, mode] = process.argv.slice(2);
if (!url || !['deflate', 'plain'].includes(mode)) fail('usage: node node_echo_client.js URL deflate|plain');
main(url, mode === 'deflate').then(() => process.exit(0), (error) => fail(error.message));
