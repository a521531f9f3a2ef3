// A load generator that sockjet did not write: Node's `ws` client, closed loop.
//
//   node node_load.js URL CONNS SIZE DEPTH SECONDS WARMUP [--binary]
//
// Opens CONNS connections, keeps DEPTH messages of SIZE bytes in flight on each (each echo
// answered by the next message), and after WARMUP seconds counts echoes for SECONDS. It
// prints "measuring" to stderr when the count starts and, at the end, one JSON line to
// stdout: {"messages": N, "seconds": S, "per_s": R, "errors": E}. Used by bench/independent
// to cross-check `sockjet bench` (bench/README.md, "An independent load generator").
"use strict";

const WebSocket = require("ws");

const [url, conns, size, depth, seconds, warmup] = [
  process.argv[2],
  Number(process.argv[3] || 100),
  Number(process.argv[4] || 16),
  Number(process.argv[5] || 1),
  Number(process.argv[6] || 5),
  Number(process.argv[7] || 1),
];
const binary = process.argv.includes("--binary");
if (!url || !(conns > 0 && size >= 0 && depth > 0 && seconds > 0 && warmup >= 0)) {
  console.error("usage: node node_load.js URL CONNS SIZE DEPTH SECONDS WARMUP [--binary]");
  process.exit(2);
}

const payload = binary ? Buffer.alloc(size, 0x61) : "a".repeat(size);
let counting = false;
let messages = 0;
let errors = 0;
let open = 0;

for (let i = 0; i < conns; i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
  ws.on("open", () => {
    for (let k = 0; k < depth; k++) ws.send(payload, { binary });
    if (++open === conns) start();
  });
  ws.on("message", () => {
    if (counting) messages++;
    ws.send(payload, { binary });
  });
  ws.on("error", (error) => {
    errors++;
    console.error(`connection ${i}: ${error.message}`);
  });
  ws.on("close", (code) => {
    if (counting) {
      errors++;
      console.error(`connection ${i} closed early: ${code}`);
    }
  });
}

// Bounded: connections that never open end the run.
const giveUp = setTimeout(() => {
  console.error(`only ${open} of ${conns} connections opened`);
  process.exit(1);
}, 30_000);

function start() {
  clearTimeout(giveUp);
  setTimeout(() => {
    const begin = process.hrtime.bigint();
    counting = true;
    console.error("measuring");
    setTimeout(() => {
      counting = false;
      const elapsed = Number(process.hrtime.bigint() - begin) / 1e9;
      console.log(JSON.stringify({ messages, seconds: elapsed, per_s: messages / elapsed, errors }));
      process.exit(0);
    }, seconds * 1000);
  }, warmup * 1000);
}
