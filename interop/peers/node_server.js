'use strict';
// Node.js `ws` server for the interop tests: node node_server.js
//
// Listens on 127.0.0.1 on a free port, prints {"event":"listening","port":N}, plays
// node_scenario.js on each connection (by path: /main, then /sockjet-closes), prints
// {"event":"done"} and exits after the /sockjet-closes connection.

const { WebSocketServer } = require('ws');
const scenario = require('./node_scenario');

const NAME = 'node server';

async function main() {
  const wss = new WebSocketServer({ ...scenario.options, host: '127.0.0.1', port: 0 });
  await scenario.withTimeout(
    new Promise((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    }),
    'listening',
  );
  scenario.emit({ event: 'listening', port: wss.address().port });
  await new Promise((resolve, reject) => {
    wss.on('connection', (ws, request) => {
      const path = new URL(request.url, 'ws://127.0.0.1').pathname;
      scenario.play(ws, path, NAME).then(() => {
        if (path === '/sockjet-closes') resolve();
      }, reject);
    });
  });
  await new Promise((resolve) => wss.close(resolve));
  scenario.emit({ event: 'done' });
}

scenario.run(main);
