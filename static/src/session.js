// The case's shared document and the connection that keeps it in step with everyone else's.
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";

const STATES = {
  connected: "Live",
  connecting: "Connecting…",
  disconnected: "Offline: your changes are kept and sent when the connection returns",
};

// `serverPath`: /ws/cases for a case, /ws/teaching for a teaching session.
export function openSession(caseId, statusElement, serverPath = "/ws/cases") {
  const doc = new Y.Doc();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // y-websocket puts the room after the server URL: /ws/cases/{case_id}.
  const provider = new WebsocketProvider(`${scheme}://${location.host}${serverPath}`, caseId, doc, {
    maxBackoffTime: 2000,
  });
  const show = (state) => {
    statusElement.dataset.state = state;
    statusElement.textContent = STATES[state] || state;
  };
  show("connecting");
  provider.on("status", ({ status }) => show(status));
  // A browser that knows it is offline stops at once instead of waiting for a timeout, keeps
  // working on its own copy, and reconnects (sending what changed) as soon as it is back.
  window.addEventListener("offline", () => provider.disconnect());
  window.addEventListener("online", () => provider.connect());
  return { doc, provider, awareness: provider.awareness };
}
