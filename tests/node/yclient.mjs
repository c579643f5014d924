// A y-websocket client in Node, as a browser would run it (npm yjs + y-websocket, ws).
// Usage: node yclient.mjs SERVER_URL ROOM TOKEN SCENARIO_JSON
// The scenario: {"name": "...", "annotations": {id: {...}}, "messages": ["..."],
//   "awareness": {...}, "expect_annotations": [ids], "expect_messages": n, "expect_peers": n}
// Prints the final state as JSON on stdout, exits 0 when every expectation held.
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import WebSocket from "ws";

const [serverUrl, room, token, scenarioJson] = process.argv.slice(2);
const scenario = JSON.parse(scenarioJson);

// Browsers sign in with their session cookie; tools send an API token in a header.
class AuthorisedWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { headers: { Authorization: `Bearer ${token}` } });
  }
}

const doc = new Y.Doc();
const provider = new WebsocketProvider(serverUrl, room, doc, { WebSocketPolyfill: AuthorisedWebSocket });
const annotations = doc.getMap("annotations");
const discussion = doc.getArray("discussion");

const timer = setTimeout(() => finish(1), 15000);
// Everyone seen at some point: peers that finish first leave, and that is fine.
const seen = new Map();
provider.awareness.on("change", () => {
  for (const [id, s] of provider.awareness.getStates()) if (id !== doc.clientID && s) seen.set(id, s);
});

function state() {
  return {
    annotations: annotations.toJSON(),
    messages: discussion.toArray().map((m) => m.get("text")),
    peers: [...seen.values()],
  };
}

function done() {
  const s = state();
  return (scenario.expect_annotations || []).every((id) => id in s.annotations)
    && s.messages.length >= (scenario.expect_messages || 0)
    && s.peers.length >= (scenario.expect_peers || 0);
}

let finished = false;
function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);

  process.stdout.write(JSON.stringify(state()) + "\n");
  provider.destroy();
  process.exit(code);
}

function check() {
  if (done()) finish(0);
}

provider.once("sync", () => {
  provider.awareness.setLocalState(scenario.awareness || null);
  doc.transact(() => {
    for (const [id, fields] of Object.entries(scenario.annotations || {})) {
      const annotation = new Y.Map();
      for (const [key, value] of Object.entries(fields)) annotation.set(key, value);
      annotations.set(id, annotation);
    }
    for (const text of scenario.messages || []) {
      const message = new Y.Map();
      message.set("text", text);
      message.set("author", String(scenario.author));
      discussion.push([message]);
    }
  });
  doc.on("update", check);
  provider.awareness.on("change", check);
  check();
});

