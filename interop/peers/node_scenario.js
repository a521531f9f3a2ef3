'use strict';
// The interop scenario as the Node.js `ws` peer plays it, client or server; the same as
// python_scenario.py (read its docstring). Shared by node_client.js and node_server.js.
//
// One JSON line per observation on stdout; on any failure a message on stderr and a
// non-zero exit.

const crypto = require('crypto');

// Every wait is bounded.
const TIMEOUT_MS = 10000;
const MIB = 1 << 20;
const MAX_SIZE = 4 * MIB;

function emit(observation) {
  process.stdout.write(JSON.stringify(observation) + '\n');
}

function fail(message) {
  process.stderr.write(`node peer: ${message}\n`);
  process.exit(1);
}

// Deterministic bytes; the Rust side computes the same (interop/src/lib.rs).
function pattern(length, mul, add, mod) {
  const buffer = Buffer.alloc(length);
  for (let i = 0; i < length; i++) buffer[i] = (i * mul + add) % mod;
  return buffer;
}

// The observation for a received message: type, length in bytes, SHA-1, and the content
// itself when short.
function describe({ data, isBinary }) {
  const observation = { event: 'message', type: isBinary ? 'binary' : 'text', len: data.length };
  if (data.length <= 256) {
    if (isBinary) observation.hex = data.toString('hex');
    else observation.text = data.toString('utf8');
  }
  observation.sha1 = crypto.createHash('sha1').update(data).digest('hex');
  return observation;
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Wraps a `ws` WebSocket with awaitable recv() / send() / ping() / close(). `annotate`,
// called as each message arrives, adds fields to what recv() resolves with.
class Peer {
  constructor(ws, annotate = () => ({})) {
    this.ws = ws;
    this.queue = [];
    this.waiter = null;
    this.closed = null; // { code, reason } of the close frame received
    this.closedPromise = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString('utf8') };
        this._wake();
        resolve(this.closed);
      });
    });
    this.error = null;
    ws.on('error', (error) => {
      this.error = error;
      this._wake();
    });
    ws.on('message', (data, isBinary) => {
      this.queue.push({ data, isBinary, ...annotate() });
      this._wake();
    });
  }

  _wake() {
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter();
    }
  }

  // Resolves with the next message, or with null once the connection is closed.
  recv() {
    const next = () => {
      if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
      if (this.error) return Promise.reject(this.error);
      if (this.closed) return Promise.resolve(null);
      return new Promise((resolve) => {
        this.waiter = resolve;
      }).then(next);
    };
    return withTimeout(next(), 'waiting for a message');
  }

  send(data, options = {}) {
    return withTimeout(
      new Promise((resolve, reject) => {
        this.ws.send(data, options, (error) => (error ? reject(error) : resolve()));
      }),
      'sending',
    );
  }

  async expectMessage() {
    const message = await this.recv();
    if (message === null) {
      throw new Error(`connection closed (${JSON.stringify(this.closed)}) while waiting for a message`);
    }
    return message;
  }
}

async function mainConnection(peer, name) {
  await peer.send(`héllo from ${name} ✓ 🦀`);
  emit(describe(await peer.expectMessage()));
  await peer.send(Buffer.from([...Array(256).keys()]));
  emit(describe(await peer.expectMessage()));
  await peer.send(pattern(MIB, 31, 7, 251));
  emit(describe(await peer.expectMessage()));
  // Fragmented text; the second fragment boundary splits the two bytes of "ö".
  const two = Buffer.from('frag-twö ', 'utf8');
  await peer.send('frag-one ', { fin: false });
  await peer.send(two.subarray(0, 8), { binary: false, fin: false });
  await peer.send(two.subarray(8), { binary: false, fin: false });
  await peer.send('frag-three 🦀', { binary: false, fin: true });
  // Fragmented binary, with an empty fragment in the middle.
  await peer.send(Buffer.from([0, 1, 2]), { binary: true, fin: false });
  await peer.send(Buffer.alloc(0), { binary: true, fin: false });
  await peer.send(Buffer.from([3, 4]), { binary: true, fin: true });
  emit(describe(await peer.expectMessage())); // the large text
  const message = await peer.expectMessage();
  emit(describe(message));
  if (message.isBinary || message.data.toString('utf8') !== 'ping me') {
    throw new Error(`expected 'ping me', got ${message.data.toString('utf8').slice(0, 100)}`);
  }
  const pong = new Promise((resolve) => peer.ws.once('pong', resolve));
  peer.ws.ping(Buffer.from('peer-ping'));
  const payload = await withTimeout(pong, 'waiting for the pong');
  emit({ event: 'pong', payload: payload.toString('utf8') });
  await peer.send('pong received');
  peer.ws.close(4001, 'bye');
  const closed = await withTimeout(peer.closedPromise, 'closing');
  emit({ event: 'closed', code: closed.code, reason: closed.reason });
}

async function closingConnection(peer, name) {
  await peer.send(`hello again from ${name}`);
  for (;;) {
    const message = await peer.recv();
    if (message === null) break;
    emit(describe(message));
  }
  emit({ event: 'closed', code: peer.closed.code, reason: peer.closed.reason });
}

async function play(ws, path, name) {
  const peer = new Peer(ws);
  emit({ event: 'open', path });
  if (path === '/main') await mainConnection(peer, name);
  else if (path === '/sockjet-closes') await closingConnection(peer, name);
  else throw new Error(`unexpected path ${path}`);
}

// Runs the peer; any error (timeout, unexpected close...) exits non-zero. The whole run
// is bounded too.
function run(main) {
  const deadline = setTimeout(() => fail('timed out after 60 s'), 60000);
  main().then(
    () => clearTimeout(deadline),
    (error) => fail(error && error.stack ? error.stack : String(error)),
  );
}

const options = {
  perMessageDeflate: false, // uncompressed; node_deflate.js covers permessage-deflate
  maxPayload: MAX_SIZE,
};

module.exports = {
  MIB,
  MAX_SIZE,
  TIMEOUT_MS,
  Peer,
  describe,
  emit,
  fail,
  pattern,
  play,
  run,
  withTimeout,
  options,
};
