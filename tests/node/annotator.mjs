// A y-websocket client in Node that keeps drawing annotations, as a busy browser tab would,
// and rides out server restarts and dropped links with y-websocket's own reconnect and resync.
// Usage: node annotator.mjs SERVER_URL ROOM TOKEN CONFIG_JSON
// CONFIG: {"name": "...", "author": user id, "prefix": "...", "every_ms": n, "max_backoff_ms": n}
// stdout, one JSON object a line, flushed as it happens:
//   {"client": Yjs client id}    first, once
//   {"created": id}           an annotation made (online or offline: it is in this doc from then on)
//   {"status": "connected" | "disconnected"}, {"synced": true}, {"closed": code, "reason": ...}
//   {"peers": n}              how many others it sees (whenever that changes)
//   {"doc": [ids], "peers": n} the answer to "report"
// stdin, one command a line: "stop" (no more annotations), "expect ID ID ..." (answer
// "report" as soon as the doc holds all of them), "report", "quit".
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import WebSocket from "ws";
import readline from "node:readline";

const [serverUrl, room, token, configJson] = process.argv.slice(2);
const config = JSON.parse(configJson);

class AuthorisedWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { headers: { Authorization: `Bearer ${token}` } });
  }
}

const doc = new Y.Doc();
const provider = new WebsocketProvider(serverUrl, room, doc, {
  WebSocketPolyfill: AuthorisedWebSocket,
  maxBackoffTime: config.max_backoff_ms ?? 500,
  disableBc: true,
});
const annotations = doc.getMap("annotations");

function say(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function others() {
  return [...provider.awareness.getStates().keys()].filter((id) => id !== doc.clientID).length;
}

say({ client: doc.clientID });
provider.on("status", ({ status }) => say({ status }));
provider.on("sync", (synced) => synced && say({ synced: true }));
provider.on("closed", ({ code, reason }) => say({ closed: code, reason }));
let peers = 0;
provider.awareness.on("change", () => {
  if (others() !== peers) say({ peers: (peers = others()) });
});

let made = 0;
let drawing = null;
let stopped = false;
provider.once("sync", () => {
  provider.awareness.setLocalState({ user: { name: config.name }, pointer: { slide: "s1", x: 0, y: 0 } });
  if (!stopped) drawing = setInterval(draw, config.every_ms ?? 20);
});

function draw() {
  made += 1;
  const id = `${config.prefix}-${made}`;
  const annotation = new Y.Map();
  for (const [key, value] of Object.entries({
    slide: "s1",
    kind: "point",
    points: [[made, made]],
    label: `${config.name} #${made}`,
    color: "#3f51b5",
    author: String(config.author),
    created: "2026-11-29T10:00:00Z",
    updated: "2026-11-29T10:00:00Z",
  })) {
    annotation.set(key, value);
  }
  annotations.set(id, annotation);
  say({ created: id });
  // The pointer moves too, so that awareness traffic rides along with the document's.
  provider.awareness.setLocalStateField("pointer", { slide: "s1", x: made, y: made });
}

let expected = null;
function report() {
  say({ doc: [...annotations.keys()], peers: others() });
}
function check() {
  if (expected !== null && expected.every((id) => annotations.has(id))) {
    expected = null;
    report();
  }
}
doc.on("update", check);

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, ...args] = line.trim().split(/\s+/);
  if (command === "stop") {
    stopped = true;
    clearInterval(drawing);
    say({ stopped: made });
  } else if (command === "expect") {
    expected = args;
    check();
  } else if (command === "report") {
    report();
  } else if (command === "quit") {
    provider.destroy();
    process.exit(0);
  }
}).on("close", () => process.exit(0)); // the test went away

