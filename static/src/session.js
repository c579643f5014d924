// The case's shared document and the connection that keeps it in step with everyone else's.
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";

const STATES = {
  connected: "Live",
  connecting: "Connecting…",
  disconnected: "Offline: your changes are kept and sent when the connection returns",
  ended: "Your access to this case has ended",
};
// Close codes after which y-websocket does not reconnect (docs/sync.md): the person signed out,
// their sign-in expired or the share that opened the case ended; or they may now only read it.
const ACCESS_ENDED = 4403;
const NOW_READ_ONLY = 4409;

// `serverPath`: /ws/cases for a case, /ws/teaching for a teaching session. `onAccessEnded`: what
// else to take down when access to the case ends (only a case page passes it).
export function openSession(caseId, statusElement, serverPath = "/ws/cases", { onAccessEnded = null } = {}) {
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
  if (onAccessEnded) {
    provider.on("closed", ({ code }) => {
      if (code === NOW_READ_ONLY) {
        location.reload(); // the page comes back read-only, without the tools
      } else if (code === ACCESS_ENDED) {
        show("ended");
        provider.destroy();
        onAccessEnded();
        clearCase();
      }
    });
  }
  // A browser that knows it is offline stops at once instead of waiting for a timeout, keeps
  // working on its own copy, and reconnects (sending what changed) as soon as it is back.
  window.addEventListener("offline", () => provider.disconnect());
  window.addEventListener("online", () => provider.connect());
  return { doc, provider, awareness: provider.awareness };
}

// Access ended: nothing of the case stays on screen (patient details, accession, slides,
// annotations, discussion, opinions), only the reason and the way back.
function clearCase() {
  for (const part of document.querySelectorAll(".case-details, .session, .sharing, .opinions, .shortcuts")) {
    part.remove();
  }
  const head = document.querySelector(".case-head");
  if (head) {
    const title = document.createElement("h1");
    title.textContent = STATES.ended;
    const note = document.createElement("p");
    note.className = "access-ended";
    note.setAttribute("role", "alert");
    note.textContent = "The share, second opinion or meeting that opened it is over, or you signed out. ";
    const back = document.createElement("a");
    back.href = "/";
    back.textContent = "Back to the worklist";
    note.append(back);
    head.replaceChildren(title, note);
  }
  document.title = STATES.ended;
}
