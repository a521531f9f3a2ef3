'use strict';
// Node.js `ws` client for the interop tests: node node_client.js ws://127.0.0.1:PORT
//
// Connects to PORT/main then PORT/sockjet-closes and plays node_scenario.js on each;
// prints {"event":"done"} at the end.

const WebSocket = require('ws');
const scenario = require('./node_scenario');

const NAME = 'node client';

function connect(url) {
  const ws = new WebSocket(url, { ...scenario.options, handshakeTimeout: scenario.TIMEOUT_MS });
  return scenario.withTimeout(
    new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    }),
    `connecting to ${url}`,
  );
}

async function main() {
  const base = process.argv[2];
  if (!base) scenario.fail('usage: node node_client.js ws://127.0.0.1:PORT');
  for (const path of ['/main', '/sockjet-closes']) {
    const ws = await connect(base + path);
    await scenario.play(ws, path, NAME);
  }
  scenario.emit({ event: 'done' });
}

scenario.run(main);
