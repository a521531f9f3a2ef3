'use strict';
// Node.js `ws` broadcast server for sockjet's fan-out benchmark (bench/compare fanout-10k):
//
//   node node_broadcast.js PORT
//
// Listens on 127.0.0.1:PORT and prints `listening on ws://127.0.0.1:PORT`. Every message
// received on any connection is sent to every open connection, its sender included, text as
// text and binary as binary, with ws's documented broadcast loop (README, "Server broadcast",
// "including itself"):
//
//   wss.clients.forEach(client => {
//     if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
//   });
//
// ws has no backpressure here: a receiver that does not read grows its socket's buffer.
// permessage-deflate is off (ws's server default). `ws` resolves from ./node_modules
// (`npm install` here) or from NODE_PATH, as for node_echo.js.

const usage = () => {
  process.stderr.write('usage: node node_broadcast.js PORT\n');
  process.exit(2);
};

let port = null;
for (const arg of process.argv.slice(2)) {
  if (port === null && /^\d+$/.test(arg) && Number(arg) < 65536) port = Number(arg);
  else usage();
}
if (port === null) usage();

const { WebSocket, WebSocketServer } = require('ws');

let bufferutil = 'not installed';
try {
  require.resolve('bufferutil');
  bufferutil = 'installed';
} catch {
  // optional
}
process.stderr.write(`ws ${require('ws/package.json').version}; bufferutil ${bufferutil}\n`);

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    wss.clients.forEach((client) => {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    });
  });
  ws.on('error', () => ws.terminate());
});

wss.on('listening', () => {
  process.stdout.write(`listening on ws://127.0.0.1:${wss.address().port}\n`);
});

wss.on('error', (err) => {
  process.stderr.write(`cannot listen on 127.0.0.1:${port}: ${err.message}\n`);
  process.exit(1);
});
