'use strict';
// Node.js `ws` echo server for sockjet's comparison benchmarks:
//
//   node node_echo.js PORT [--compression]
//
// Listens on 127.0.0.1:PORT and prints `listening on ws://127.0.0.1:PORT`. Text is echoed as
// text, binary as binary; ws answers pings and the peer's Close itself. permessage-deflate is
// on (ws's default parameters: context takeover, 1 KiB threshold) only with --compression;
// off otherwise, which is ws's server default. `ws` resolves from ./node_modules
// (`npm install` here) or from NODE_PATH. ws loads the optional `bufferutil` (masking) when
// it is installed and Node is older than 26.12; stderr says whether it is.

const usage = () => {
  process.stderr.write('usage: node node_echo.js PORT [--compression]\n');
  process.exit(2);
};

let port = null;
let compression = false;
for (const arg of process.argv.slice(2)) {
  if (arg === '--compression') compression = true;
  else if (port === null && /^\d+$/.test(arg) && Number(arg) < 65536) port = Number(arg);
  else usage();
}
if (port === null) usage();

const { WebSocketServer } = require('ws');

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
  perMessageDeflate: compression,
  maxPayload: 64 * 1024 * 1024,
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});

wss.on('listening', () => {
  process.stdout.write(`listening on ws://127.0.0.1:${wss.address().port}\n`);
});

wss.on('error', (err) => {
  process.stderr.write(`cannot listen on 127.0.0.1:${port}: ${err.message}\n`);
  process.exit(1);
});
