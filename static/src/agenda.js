// The meeting page's agenda builder (reorder by drag or keyboard, add, remove), inviting
// attendees, "Add to an MDT…" on a case page, and the summary's Print button. Each part acts
// only on the elements that ask for it. Every change goes through the /api/meetings routes.
const csrfMeta = document.querySelector('meta[name="csrf"]');

async function send(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: {
      Accept: "application/json",
      "Content-Type": "application/json",
      "X-CSRF-Token": csrfMeta ? csrfMeta.content : "",
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.ok) return { ok: true, data: await response.json() };
  let detail = `The server refused (${response.status}).`;
  try {
    detail = (await response.json()).detail || detail;
  } catch {
    // not JSON: keep the status line
  }
  return { ok: false, detail };
}

function showError(form, message) {
  const box = form.querySelector(".form-error");
  if (!box) return;
  box.textContent = message;
  box.hidden = !message;
}

// The id of the person named in a picker input: the picker's choice, else an exact username.
async function personId(input) {
  const text = input.value.trim();
  if (!text) return null;
  if (input.dataset.personId) return Number(input.dataset.personId);
  const response = await fetch(`/api/people?q=${encodeURIComponent(text)}&limit=50`);
  const people = response.ok ? await response.json() : [];
  const found = people.find((p) => p.username === text);
  return found ? found.id : undefined;
}

function builder(list) {
  const meetingId = list.dataset.meetingId;
  const items = () => [...list.querySelectorAll(":scope > li[data-case-id]")];
  const save = async () => {
    const body = {
      items: items().map((li) => ({
        case_id: li.dataset.caseId,
        question: li.dataset.question || "",
        planned_minutes: Number(li.dataset.minutes),
        presenter: li.dataset.presenter ? Number(li.dataset.presenter) : null,
      })),
    };
    list.setAttribute("aria-busy", "true");
    const answer = await send("PUT", `/api/meetings/${meetingId}/agenda`, body);
    list.removeAttribute("aria-busy");
    if (!answer.ok) {
      window.alert(answer.detail);
      window.location.reload();
    } else {
      list.dataset.saved = String(Number(list.dataset.saved || 0) + 1);
    }
  };
  const move = (li, offset) => {
    const sibling = offset < 0 ? li.previousElementSibling : li.nextElementSibling;
    if (!sibling) return;
    if (offset < 0) sibling.before(li);
    else sibling.after(li);
    li.focus();
    save();
  };
  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    const li = button && button.closest("li[data-case-id]");
    if (!li) return;
    if (button.dataset.move) {
      move(li, button.dataset.move === "up" ? -1 : 1);
      button.focus();
    } else if ("remove" in button.dataset) {
      if (!window.confirm("Take this case off the agenda?")) return;
      const answer = await send("DELETE", `/api/meetings/${meetingId}/agenda/${li.dataset.caseId}`);
      if (answer.ok) window.location.reload();
      else window.alert(answer.detail);
    }
  });
  list.addEventListener("keydown", (event) => {
    const li = event.target.closest && event.target.closest("li[data-case-id]");
    if (!li || !event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    event.preventDefault();
    move(li, event.key === "ArrowUp" ? -1 : 1);
  });
  let dragged = null;
  list.addEventListener("dragstart", (event) => {
    dragged = event.target.closest("li[data-case-id]");
    if (dragged) event.dataTransfer.setData("text/plain", dragged.dataset.caseId);
  });
  list.addEventListener("dragover", (event) => {
    if (dragged) event.preventDefault();
  });
  list.addEventListener("drop", (event) => {
    const target = event.target.closest("li[data-case-id]");
    event.preventDefault();
    if (!dragged || !target || target === dragged) return;
    const box = target.getBoundingClientRect();
    if (event.clientY < box.top + box.height / 2) target.before(dragged);
    else target.after(dragged);
    dragged = null;
    save();
  });
}

function adder(form) {
  const meetingId = form.dataset.meetingId;
  const search = form.querySelector("[data-case-search]");
  const results = form.querySelector("[data-case-results]");
  const chosen = form.querySelector("[data-chosen-case]");
  let asked = 0;
  const find = async () => {
    const mine = ++asked;
    const response = await fetch(`/api/meetings/${meetingId}/cases?q=${encodeURIComponent(search.value.trim())}`);
    if (mine !== asked || !response.ok) return;
    const cases = await response.json();
    results.replaceChildren(
      ...cases.map((c) => {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        const patient = c.patient ? ` · ${c.patient.name || "no name"}${c.patient.nhs_number ? ` · NHS ${c.patient.nhs_number}` : ""}` : "";
        button.textContent = `${c.title}${patient} · ${c.organisation}`;
        button.addEventListener("click", () => {
          form.elements.case_id.value = c.case_id;
          chosen.textContent = `Chosen: ${button.textContent}`;
          form.elements.question.focus();
        });
        li.append(button);
        return li;
      }),
    );
    if (!cases.length) results.textContent = "No case you may add matches.";
  };
  search.addEventListener("input", find);
  search.addEventListener("focus", find, { once: true });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.elements.case_id.value) return showError(form, "Find a case and choose it first.");
    const presenter = await personId(form.elements.presenter);
    if (presenter === undefined) return showError(form, "Choose the presenting pathologist from the list.");
    const answer = await send("POST", `/api/meetings/${meetingId}/agenda`, {
      case_id: form.elements.case_id.value,
      question: form.elements.question.value,
      planned_minutes: Number(form.elements.planned_minutes.value),
      presenter,
    });
    if (answer.ok) window.location.reload();
    else showError(form, answer.detail);
  });
}

function attendeeForm(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await send("POST", `/api/meetings/${form.dataset.meetingId}/attendees`, {
      username: form.elements.username.value.trim(),
    });
    if (answer.ok) window.location.reload();
    else showError(form, answer.detail);
  });
}

// "Add to an MDT…" on a case page: the upcoming meetings this person arranges.
async function addToMeeting(box) {
  const caseId = box.dataset.caseId;
  const select = box.querySelector("select");
  const form = box.querySelector("form");
  const response = await fetch("/api/meetings");
  if (!response.ok) return;
  const now = new Date().toISOString().slice(0, 16);
  const meetings = (await response.json()).filter((m) => m.may_edit && m.status === "scheduled" && m.starts_utc >= now);
  select.replaceChildren(
    ...meetings.map((m) => {
      const option = document.createElement("option");
      option.value = m.id;
      option.textContent = `${m.name} · ${m.starts_uk} (UK time)`;
      return option;
    }),
  );
  box.hidden = false;
  form.querySelector("button").disabled = !meetings.length;
  if (!meetings.length) showError(form, "No upcoming meeting that you arrange.");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await send("POST", `/api/meetings/${select.value}/agenda`, {
      case_id: caseId,
      question: form.elements.question.value,
      planned_minutes: Number(form.elements.planned_minutes.value),
      presenter: null,
    });
    if (answer.ok) window.location.assign(`/meetings/${select.value}`);
    else showError(form, answer.detail);
  });
}

for (const list of document.querySelectorAll("[data-agenda-builder]")) builder(list);
for (const form of document.querySelectorAll("form[data-agenda-add]")) adder(form);
for (const form of document.querySelectorAll("form[data-attendee-form]")) attendeeForm(form);
for (const box of document.querySelectorAll("[data-add-to-mdt]")) addToMeeting(box);
for (const button of document.querySelectorAll("[data-print]")) button.addEventListener("click", () => window.print());
