'use strict';
// Node.js `ws` peer of the permessage-deflate interop scenario; the same as
// python_deflate.py (read its docstring).
//
//   node node_deflate.js client OPTIONS ws://127.0.0.1:PORT
//   node node_deflate.js server OPTIONS
//
// OPTIONS is JSON: the `perMessageDeflate` option of `ws` (false, true or an object).
//
// Every reported message says whether it arrived compressed and, if so, its size on the
// wire: `ws` calls its PerMessageDeflate's decompress() for each frame of a message that
// has RSV1 set, and only for those; that method is wrapped to record them.

const crypto = require('crypto');
const WebSocket = require('ws');
const { WebSocketServer } = require('ws');
const scenario = require('./node_scenario');

const PATH = '/deflate';
const END = 'end of deflate scenario ✓';
const KIB = 1 << 10;
const { MIB } = scenario;

// Incompressible bytes: SHA-1 of "seed:0", "seed:1", ... concatenated; the Rust side
// computes the same (interop/src/deflate.rs).
function noise(length, seed) {
  const blocks = [];
  for (let i = 0; i * 20 < length; i++) {
    blocks.push(crypto.createHash('sha1').update(`${seed}:${i}`).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}

// What the peer sends, in order; an array is one fragmented message (text if its items
// are strings). The same list is in python_deflate.py and interop/src/deflate.rs.
function messages(name) {
  const repeated = noise(300, 'repeat').toString('hex');
  return [
    `héllo deflate from ${name} ✓ 🦀`,
    Buffer.from([...Array(256).keys()]),
    scenario.pattern(MIB, 31, 7, 251),
    noise(256 * KIB, 'peer'),
    'ö🦀'.repeat(50000),
    repeated,
    repeated,
    repeated,
    repeated,
    repeated,
    '',
    Buffer.alloc(0),
    ['frag-one ', 'frag-twö ', '', 'frag-three 🦀'],
    [
      scenario.pattern(64 * KIB, 7, 1, 256),
      noise(64 * KIB, 'frag'),
      Buffer.alloc(0),
      scenario.pattern(1000, 3, 5, 256),
      Buffer.alloc(0),
    ],
  ];
}

// Records the wire size of every compressed message as its last frame is decompressed;
// returns annotate() for scenario.Peer: whether the message that just arrived was one.
function trackCompression(ws) {
  const ext = ws._extensions['permessage-deflate'];
  if (!ext) return () => ({ compressed: false });
  const log = [];
  let consumed = 0;
  let wire = 0;
  const decompress = ext.decompress;
  ext.decompress = function (data, fin, callback) {
    wire += data.length;
    if (fin) {
      log.push(wire);
      wire = 0;
    }
    return decompress.call(this, data, fin, callback);
  };
  return () => (log.length > consumed ? { compressed: true, wire: log[consumed++] } : { compressed: false });
}

// The negotiated parameters, named as in RFC 7692, with the window sizes `ws` uses.
function negotiated(ws) {
  const ext = ws._extensions['permessage-deflate'];
  if (!ext) return null;
  const bits = (value) => (typeof value === 'number' ? value : 15);
  return {
    server_no_context_takeover: ext.params.server_no_context_takeover === true,
    client_no_context_takeover: ext.params.client_no_context_takeover === true,
    server_max_window_bits: bits(ext.params.server_max_window_bits),
    client_max_window_bits: bits(ext.params.client_max_window_bits),
  };
}

function observe(message) {
  const observation = scenario.describe(message);
  observation.compressed = message.compressed;
  if (message.compressed) observation.wire = message.wire;
  return observation;
}

async function send(peer, message) {
  if (!Array.isArray(message)) {
    await peer.send(message);
    return;
  }
  const binary = typeof message[0] !== 'string';
  for (let i = 0; i < message.length; i++) {
    await peer.send(message[i], { binary, fin: i === message.length - 1 });
  }
}

async function play(ws, path, name) {
  const peer = new scenario.Peer(ws, trackCompression(ws));
  scenario.emit({ event: 'open', path, extensions: ws.extensions, deflate: negotiated(ws) });
  if (path !== PATH) throw new Error(`unexpected path ${path}`);
  for (const message of messages(name)) {
    await send(peer, message);
    scenario.emit(observe(await peer.expectMessage()));
  }
  for (;;) {
    const message = await peer.expectMessage();
    scenario.emit(observe(message));
    if (!message.isBinary && message.data.toString('utf8') === END) break;
  }
  ws.close(1000, 'deflate done');
  const closed = await scenario.withTimeout(peer.closedPromise, 'closing');
  scenario.emit({ event: 'closed', code: closed.code, reason: closed.reason });
}

async function client(perMessageDeflate, base) {
  const ws = new WebSocket(base + PATH, {
    perMessageDeflate,
    maxPayload: scenario.MAX_SIZE,
    handshakeTimeout: scenario.TIMEOUT_MS,
  });
  await scenario.withTimeout(
    new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }),
    `connecting to ${base + PATH}`,
  );
  await play(ws, PATH, 'node client');
  scenario.emit({ event: 'done' });
}

async function server(perMessageDeflate) {
  const wss = new WebSocketServer({
    perMessageDeflate,
    maxPayload: scenario.MAX_SIZE,
    host: '127.0.0.1',
    port: 0,
  });
  await scenario.withTimeout(
    new Promise((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    }),
    'listening',
  );
  scenario.emit({ event: 'listening', port: wss.address().port });
  await new Promise((resolve, reject) => {
    wss.once('connection', (ws, request) => {
      const path = new URL(request.url, 'ws://127.0.0.1').pathname;
      play(ws, path, 'node server').then(resolve, reject);
    });
  });
  await new Promise((resolve) => wss.close(resolve));
  scenario.emit({ event: 'done' });
}

const usage = 'usage: node node_deflate.js client OPTIONS ws://127.0.0.1:PORT | server OPTIONS';
const [role, options, url] = process.argv.slice(2);
if (role === 'client' && url !== undefined) {
  scenario.run(() => client(JSON.parse(options), url));
} else if (role === 'server' && options !== undefined && url === undefined) {
  scenario.run(() => server(JSON.parse(options)));
} else {
  scenario.fail(usage);
}
