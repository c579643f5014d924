// The live MDT meeting room: the agenda with the case on screen, its timer, its outcome and
// sign-off, who is here; the case itself in an embedded case page. The server holds the
// meeting's state and pushes every change (Server-Sent Events); this page shows it and asks
// for steps, outcomes and sign-offs, which the server checks.

import { bindPanelToggle } from "./toolbar.js";

const $ = (selector) => document.querySelector(selector);

const data = JSON.parse($("#room-data").textContent);
const csrf = JSON.parse($("#room-csrf").textContent);
const cases = new Map(data.cases.map((c) => [c.case_id, c]));
let state = data.state;
let stateAt = performance.now(); // timers count on from the moment the state arrived
let framed; // the case whose page the frame shows (undefined: none yet)
let formFor = { caseId: null, recorded: null }; // what the outcome form was last filled from

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${mm.padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

function entry(caseId) {
  return state.agenda.find((a) => a.case_id === caseId) || null;
}

function secondsSpent(item) {
  const running = item.case_id === state.current ? (performance.now() - stateAt) / 1000 : 0;
  return item.seconds_spent + running;
}

function titleOf(caseId) {
  const found = cases.get(caseId);
  return found ? found.title : "a case";
}

function apply(next) {
  // A step's answer and the pushed state can cross: never go back to an older state.
  if ((next.seq || 0) < (state.seq || 0)) return;
  state = { ...next, here: next.here || state.here };
  stateAt = performance.now();
  render();
}

function render() {
  const closed = Boolean(state.closed);
  const current = state.current;
  const item = current ? entry(current) : null;
  $("#room-closed").hidden = !closed;
  showFrame(current, closed);

  $("#now-title").textContent = item ? `${item.position}. ${titleOf(current)}` : closed ? "The meeting is closed." : "No case on screen.";
  for (const summary of document.querySelectorAll(".case-summary")) summary.hidden = summary.dataset.caseId !== current;
  renderOutcome(item, closed);
  renderSteps(current, closed);

  for (const li of document.querySelectorAll("#room-agenda li[data-case-id]")) {
    const found = entry(li.dataset.caseId);
    if (li.dataset.caseId === current) li.setAttribute("aria-current", "true");
    else li.removeAttribute("aria-current");
    li.classList.toggle("done", Boolean(found && found.presented && li.dataset.caseId !== current));
    const outcome = found && found.outcome;
    const decision = li.querySelector(".decision");
    decision.textContent = outcome ? `${outcome.decision}${outcome.signed_off ? " · signed off" : ""}` : "";
    decision.classList.toggle("signed-off", Boolean(outcome && outcome.signed_off));
  }
  renderTimes();
  renderPeople();
}

function showFrame(current, closed) {
  if (current === framed) return;
  framed = current;
  const frame = $("#case-frame");
  const target = current && cases.get(current);
  const note = $("#no-frame");
  if (target && target.frame) {
    frame.src = target.frame;
    frame.hidden = false;
    note.hidden = true;
    return;
  }
  frame.hidden = true;
  frame.src = "about:blank"; // leaves the previous case's live session
  note.hidden = false;
  if (current) note.textContent = "You cannot open this case; its outcome is shown beside.";
  else if (closed) note.textContent = "The meeting is closed.";
  else note.textContent = "No case on screen. Waiting for the chair or the coordinator to put one on screen.";
}

function renderOutcome(item, closed) {
  const outcome = item && item.outcome;
  const box = $("#now-outcome");
  box.replaceChildren();
  if (item) {
    const p = document.createElement("p");
    if (outcome) {
      const strong = document.createElement("strong");
      strong.textContent = outcome.decision;
      p.append("Outcome: ", strong, outcome.notes ? `: ${outcome.notes}` : "");
      const by = document.createElement("span");
      by.className = "muted";
      by.textContent = ` recorded by ${outcome.recorded_by}`;
      p.append(by);
      if (outcome.signed_off) {
        const signed = document.createElement("span");
        signed.className = "signed-off";
        signed.textContent = `signed off by ${outcome.signed_off_by}`;
        p.append(" ", signed);
      }
    } else {
      p.className = "muted";
      p.textContent = "No outcome recorded yet.";
    }
    box.append(p);
  }
  const form = $("#outcome-form");
  if (form) {
    form.hidden = !item || closed || Boolean(outcome && outcome.signed_off);
    const recorded = outcome ? outcome.recorded : null;
    const typing = form.contains(document.activeElement);
    // Filled when the case changes, or when someone else records, unless one is typing.
    if (item && (formFor.caseId !== item.case_id || (formFor.recorded !== recorded && !typing))) {
      // Nothing chosen until the recorder chooses: a preselected decision gets recorded by mistake.
      const chosen = new Set(outcome ? outcome.decisions || [outcome.decision] : []);
      for (const box of form.querySelectorAll("input[name=decision]")) box.checked = chosen.has(box.value);
      form.elements.notes.value = outcome ? outcome.notes : "";
      formFor = { caseId: item.case_id, recorded };
    }
  }
  const signOff = $("#sign-off");
  if (signOff) signOff.hidden = !outcome || Boolean(outcome.signed_off) || closed;
}

function renderSteps(current, closed) {
  const steps = $("#steps");
  if (!steps) return;
  steps.hidden = closed;
  const order = state.agenda.map((a) => a.case_id);
  // After "Pause" the meeting goes on from the case last on screen (the server says which is next).
  const index = order.indexOf(current || state.last);
  $("#previous").disabled = index <= 0;
  $("#next").disabled = !state.next;
  $("#pause").disabled = !current;
  for (const button of document.querySelectorAll("#room-agenda button.go")) button.disabled = closed;
}

function renderTimes() {
  for (const li of document.querySelectorAll("#room-agenda li[data-case-id]")) {
    const item = entry(li.dataset.caseId);
    if (!item) continue;
    const spent = secondsSpent(item);
    const time = li.querySelector(".time");
    if (li.dataset.caseId === state.current) time.textContent = `${clock(spent)} of ${item.planned_minutes} min`;
    else if (item.presented) time.textContent = `${clock(spent)} spent (${item.planned_minutes} min planned)`;
    else time.textContent = `${item.planned_minutes} min planned`;
    time.classList.toggle("over", spent > item.planned_minutes * 60);
  }
  const timer = $("#now-timer");
  const item = state.current ? entry(state.current) : null;
  timer.hidden = !item;
  if (item) {
    const spent = secondsSpent(item);
    timer.textContent = `${clock(spent)} of ${item.planned_minutes} min`;
    timer.classList.toggle("over", spent > item.planned_minutes * 60);
  }
}

function renderPeople() {
  const here = new Set((state.here || []).map((p) => p.id));
  const items = state.attendees.map((person) => {
    const li = document.createElement("li");
    li.dataset.userId = person.id;
    const status = here.has(person.id) ? "here" : person.attended ? "attended" : "absent";
    li.dataset.status = status;
    const name = document.createElement("span");
    name.textContent = person.name + (person.id === data.me.id ? " (you)" : "");
    const about = document.createElement("span");
    about.className = "muted";
    about.textContent = { here: "in the room now", attended: "attended, not here now", absent: "not yet here" }[status];
    li.append(name, " ", about);
    return li;
  });
  $("#room-people").replaceChildren(...items);
}

function showError(message) {
  const alert = $("#room-error");
  alert.textContent = message;
  alert.hidden = !message;
}

function fieldsWithCsrf(fields) {
  const body = new URLSearchParams(fields instanceof URLSearchParams ? fields : Object.entries(fields));
  body.set("csrf", csrf);
  return body;
}

// Posts a form as the room's buttons do; the answer's text is the message shown on refusal.
async function post(path, fields) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      body: fieldsWithCsrf(fields),
      headers: { Accept: "application/json" },
    });
  } catch {
    showError("The server could not be reached. Check the connection and try again.");
    return null;
  }
  if (!response.ok) {
    showError((await response.text()).trim() || `The server refused (${response.status}).`);
    return null;
  }
  showError("");
  return response.json();
}

async function step(caseId) {
  const next = await post(`/meetings/${data.id}/current`, { case: caseId || "" });
  if (next) apply(next);
}

function bindControls() {
  const order = () => state.agenda.map((a) => a.case_id);
  const at = (offset) => {
    const list = order();
    const index = list.indexOf(state.current || state.last);
    return list[index === -1 ? 0 : index + offset];
  };
  $("#previous")?.addEventListener("click", () => step(at(-1)));
  $("#next")?.addEventListener("click", () => state.next && step(state.next));
  $("#pause")?.addEventListener("click", () => step(null));
  // Keys for whoever steps (the buttons exist only for them): N / P, the arrows, and the
  // PageDown / PageUp that presentation clickers send. A disabled button ignores the click.
  const byKey = (key) => {
    if (["n", "N", "PageDown", "ArrowRight"].includes(key)) $("#next")?.click();
    else if (["p", "P", "PageUp", "ArrowLeft"].includes(key)) $("#previous")?.click();
    else return false;
    return true;
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    if (byKey(event.key)) event.preventDefault();
  });
  // With the slide in focus the case page has the keys; it passes the clicker's on.
  const frame = $("#case-frame");
  window.addEventListener("message", (event) => {
    if (event.origin !== location.origin || !frame || event.source !== frame.contentWindow) return;
    if (event.data && event.data.collab === "step" && ["PageDown", "PageUp"].includes(event.data.key)) {
      byKey(event.data.key);
    }
  });
  for (const button of document.querySelectorAll("#room-agenda button.go")) {
    button.addEventListener("click", () => step(button.closest("li").dataset.caseId));
  }
  const form = $("#outcome-form");
  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const caseId = formFor.caseId;
    if (!caseId) return;
    const fields = new URLSearchParams(new FormData(form));
    const saved = await post(`/meetings/${data.id}/cases/${caseId}/outcome`, fields);
    if (saved) form.querySelector("button[type=submit]").blur(); // the pushed state fills the rest
  });
  $("#sign-off")?.addEventListener("click", () => {
    if (state.current) post(`/meetings/${data.id}/cases/${state.current}/sign-off`, {});
  });
}

function listen() {
  const link = $("#room-link");
  const show = (stateName, text) => {
    link.dataset.state = stateName;
    link.textContent = text;
  };
  const source = new EventSource(`/meetings/${data.id}/events`);
  source.addEventListener("open", () => show("connected", "Live"));
  source.addEventListener("message", (event) => {
    show("connected", "Live");
    apply(JSON.parse(event.data));
  });
  source.addEventListener("error", () => {
    // The browser retries by itself; a refusal (signed out, not a participant) closes it.
    if (source.readyState === EventSource.CLOSED) show("disconnected", "Disconnected: reload the page");
    else show("connecting", "Reconnecting…");
  });
}

bindControls();
render();
listen();
setInterval(renderTimes, 1000);
// For tests and integrations running in the page.
window.meetingRoom = { data, state: () => state };

bindPanelToggle({ button: $("#room-side-toggle"), panel: $("#room-side"), container: $(".room"), key: "collab.panel.room" });
