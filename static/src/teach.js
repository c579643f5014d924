// A teaching session: the educator leads, students follow. Students see the educator's view
// (slide, region, rotation) and cannot pan elsewhere; they draw only while holding the pen;
// they answer quiz questions with a click that only the server sees until the reveal.
import { Annotations } from "./annotations.js";
import { DrawingTools, TOOLS } from "./draw.js";
import { Overlay, svgElement } from "./overlay.js";
import { AnnotationPanel, bindEditor } from "./panel.js";
import { Pointers } from "./pointers.js";
import { Presence } from "./presence.js";
import { openSession } from "./session.js";
import { toolIcon } from "./icons.js";
import { bindScaleBar } from "./scalebar.js";
import { SlideView } from "./slideview.js";
import { Snapshots } from "./snapshot.js";
import { bindPanelToggle, fitToolbar } from "./toolbar.js";

const $ = (selector) => document.querySelector(selector);
const QUIZ_POLL_MS = 1000;

function start(data) {
  const educator = data.role === "educator";
  const rights = data.rights; // mutated when the pen moves: Annotations and DrawingTools read it
  const { doc, provider, awareness } = openSession(data.sessionId, $("#connection"), "/ws/teaching");
  const slideView = new SlideView($("#viewer"), data.slides);
  const overlay = new Overlay(slideView.viewer);
  const presence = new Presence(awareness, data.user, slideView);
  if (!educator) quieten(presence, rights);
  const pointers = new Pointers(overlay, presence, slideView);
  const annotations = new Annotations(doc, data.user, rights);
  const tools = new DrawingTools(overlay, slideView, annotations);
  const panel = new AnnotationPanel({
    overlay,
    slideView,
    annotations,
    tools,
    list: $("#annotation-list"),
    editor: $("#annotation-editor"),
  });
  bindEditor(panel);
  const session = doc.getMap("session");
  const quiz = doc.getMap("quiz");
  const post = (path, body) =>
    fetch(`/teach/${data.sessionId}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": data.csrf },
      body: JSON.stringify(body),
    });

  bindTools({ tools, rights, educator });
  bindScaleBar(slideView, $("#scale-bar"));
  $("#fullscreen").addEventListener("click", () => slideView.fullScreen());
  fitToolbar($(".toolbar"));
  bindPanelToggle({ button: $("#side-toggle"), panel: $(".session > .side"), container: $(".session"), key: "collab.panel.teaching" });
  bindPen({ session, rights, tools, educator, data });
  if (educator) {
    bindSlideStrip(slideView);
    bindStudents({ presence, session, post });
    bindQuizControls({ quiz, slideView, post, sessionId: data.sessionId });
    $("#rotate-left").addEventListener("click", () => slideView.rotate(-90));
    $("#rotate-right").addEventListener("click", () => slideView.rotate(90));
    $("#home").addEventListener("click", () => slideView.home());
    const snapshots = new Snapshots({
      slideView,
      overlay,
      tools,
      panel: $("#snapshot-panel"),
      endpoint: `/teach/${data.sessionId}/snapshots`,
      headers: { "X-CSRF-Token": data.csrf },
    });
    $("#snapshot").addEventListener("click", () => snapshots.open());
  } else {
    followEducator({ presence, slideView, tools, educatorId: data.educator.id });
    // A change refused after the pen was taken back would be resent on every reconnect: start afresh.
    // 4410: the session ended (the page then says so).
    provider.on("connection-close", (event) => {
      if (event && ((event.code === 4403 && !rights.contribute) || event.code === 4410)) location.reload();
    });
  }
  const scatter = new Scatter({ overlay, slideView, quiz, educator, post });
  slideView.addEventListener("slide", () => {
    const slide = data.slides.find((s) => s.id === slideView.slideId);
    $("#where").textContent = slide ? slide.title : "";
  });
  slideView.show(data.slides[0].id);
  window.collab = { doc, provider, awareness, viewer: slideView.viewer, slideView, overlay, presence, annotations, tools, scatter, pointers };
}

// Students send who they are, not where they look or point: a hundred students at 20 moves a
// second would flood the educator. The pen holder is heard like the educator.
function quieten(presence, rights) {
  const set = presence.out.set.bind(presence.out);
  presence.out.set = (field, value) => {
    if ((field === "view" || field === "pointer") && !rights.contribute) return;
    set(field, value);
  };
}

// Students always look where the educator looks; a gesture of their own snaps back.
function followEducator({ presence, slideView, tools, educatorId }) {
  const lock = () => {
    if (tools.tool === "select") slideView.viewer.setMouseNavEnabled(false);
  };
  lock();
  tools.addEventListener("tool", lock);
  const educatorClient = () => presence.people().find((p) => p.user.id === educatorId);
  presence.addEventListener("people", () => {
    const found = educatorClient();
    if (found && presence.following !== found.clientId) presence.follow(found.clientId);
  });
  presence.addEventListener("follow", () => {
    if (presence.offView) presence.returnToView();
  });
}

function bindTools({ tools, rights, educator }) {
  const bar = $("#tools");
  const render = () => {
    bar.replaceChildren();
    $("#colour").hidden = !rights.contribute;
    if (!rights.contribute) return;
    for (const [name, tool] of Object.entries(TOOLS)) {
      if (name === "select" && !educator) continue; // students do not pan: the educator leads
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.tool = name;
      button.append(toolIcon(name));
      button.setAttribute("aria-label", tool.label);
      button.title = tool.label;
      button.setAttribute("aria-pressed", String(tools.tool === name));
      button.addEventListener("click", () => tools.use(name));
      bar.append(button);
    }
    if (!educator) {
      const stop = document.createElement("button");
      stop.type = "button";
      stop.dataset.tool = "select";
      stop.textContent = "Stop drawing";
      stop.addEventListener("click", () => tools.use("select"));
      bar.append(stop);
    }
  };
  tools.addEventListener("tool", () => {
    for (const button of bar.querySelectorAll("[data-tool]")) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === tools.tool));
    }
  });
  $("#colour").addEventListener("change", (e) => (tools.color = e.target.value));
  tools.addEventListener("rights", render);
  render();
}

// The server writes who holds the pen into the document's `session` map; it also decides it
// (only that student's connection may write), so this only shows it.
function bindPen({ session, rights, tools, educator, data }) {
  const show = () => {
    const holder = session.get("pen");
    const name = session.get("penName");
    const mine = !educator && holder === data.user.id;
    if (!educator && rights.contribute !== mine) {
      rights.contribute = mine;
      if (!mine) tools.use("select");
      tools.dispatchEvent(new Event("rights"));
    }
    $("#pen-status").textContent = mine
      ? "You have the pen: draw on the slide"
      : holder !== null && holder !== undefined
        ? `${name} has the pen`
        : "";
    document.body.dataset.pen = mine ? "mine" : holder ? "other" : "none";
  };
  session.observe(show);
  show();
}

function bindSlideStrip(slideView) {
  const buttons = [...document.querySelectorAll(".slide-strip [data-slide-id]")];
  for (const button of buttons) button.addEventListener("click", () => slideView.show(button.dataset.slideId));
  slideView.addEventListener("slide", () => {
    for (const button of buttons) button.setAttribute("aria-current", String(button.dataset.slideId === slideView.slideId));
  });
}

// The students here (from their awareness, which only the educator receives) and the pen.
function bindStudents({ presence, session, post }) {
  const list = $("#students");
  const render = () => {
    const holder = session.get("pen");
    const students = presence.people().filter((p) => p.user.role === "student");
    $("#student-count").textContent = String(new Set(students.map((s) => s.user.id)).size);
    const seen = new Set();
    const items = [];
    for (const student of students) {
      if (seen.has(student.user.id)) continue; // two tabs of one student
      seen.add(student.user.id);
      const item = document.createElement("li");
      item.dataset.userId = student.user.id;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = student.user.name;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "give-pen";
      const has = holder === student.user.id;
      button.textContent = has ? "Has the pen" : "Give the pen";
      button.disabled = has;
      button.addEventListener("click", () => post("/pen", { participant: -student.user.id }));
      item.append(name, button);
      items.push(item);
    }
    list.replaceChildren(...items);
    $("#take-pen").hidden = holder === null || holder === undefined;
  };
  $("#take-pen").addEventListener("click", () => post("/pen", { participant: null }));
  presence.addEventListener("people", render);
  session.observe(render);
  render();
}

function bindQuizControls({ quiz, slideView, post, sessionId }) {
  const form = $("#quiz-form");
  const count = $("#quiz-count");
  let timer = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = form.elements.question.value.trim();
    if (!question) return;
    const response = await post("/quiz", { question, slide: slideView.slideId });
    if (response.ok) form.reset();
  });
  $("#reveal").addEventListener("click", () => post("/quiz/reveal", { names: $("#reveal-names").checked }));
  $("#clear-quiz").addEventListener("click", () => post("/quiz/clear", {}));
  // The count of answers is private to the educator: polled, never put in the shared document.
  const poll = async () => {
    const response = await fetch(`/teach/${sessionId}/quiz`);
    if (response.ok) {
      const status = await response.json();
      count.hidden = !status.id || !status.state;
      count.textContent = `${status.answers} answered`;
      count.dataset.answers = status.answers;
    }
  };
  const update = () => {
    const state = quiz.get("state");
    $("#reveal").disabled = state !== "open";
    $("#clear-quiz").disabled = !state;
    clearInterval(timer);
    timer = null;
    if (state === "open") timer = setInterval(poll, QUIZ_POLL_MS);
    poll();
  };
  quiz.observe(update);
  update();
}

// The question on screen, the student's own answer, and after the reveal everyone's dots.
class Scatter {
  constructor({ overlay, slideView, quiz, educator, post }) {
    this.overlay = overlay;
    this.slideView = slideView;
    this.quiz = quiz;
    this.educator = educator;
    this.post = post;
    this.mine = null; // {question, x, y}
    this.layer = svgElement("g", { class: "quiz-scatter" });
    overlay.svg.append(this.layer);
    overlay.onPaint(() => this.paint());
    quiz.observe(() => this.changed());
    if (!educator) {
      // Capture: OpenSeadragon does not see clicks while students cannot pan.
      slideView.viewer.element.addEventListener("click", (event) => this.clicked(event), true);
    }
    this.changed();
  }

  question() {
    return this.quiz.get("id") && this.quiz.get("question") ? this.quiz.toJSON() : null;
  }

  async clicked(event) {
    const q = this.question();
    if (!q || q.state !== "open" || this.slideView.slideId !== q.slide) return;
    if (this.overlay.layer.classList.contains("drawing")) return; // the pen holder is drawing
    const [x, y] = this.overlay.eventToImage(event);
    const response = await this.post("/quiz/answer", { question: q.id, x, y });
    if (response.ok) {
      this.mine = { question: q.id, x, y };
    } else {
      const body = await response.json().catch(() => ({}));
      this.hint(body.error || "Your answer was not accepted.");
      return;
    }
    this.changed();
  }

  hint(text) {
    $("#quiz-banner .hint").textContent = text;
  }

  changed() {
    const q = this.question();
    const banner = $("#quiz-banner");
    banner.hidden = !q;
    if (q) {
      banner.dataset.state = q.state;
      banner.querySelector(".question").textContent = q.question;
      if (q.state === "revealed") this.hint(`${q.count} answer${q.count === 1 ? "" : "s"}`);
      else if (this.educator) this.hint("Students are answering…");
      else if (this.mine && this.mine.question === q.id) this.hint("Answer sent. Click again to change it.");
      else this.hint("Click on the slide to answer. Only the educator sees it until the answers are revealed.");
    }
    this.paint();
  }

  paint() {
    if (!this.overlay.image()) return;
    const q = this.question();
    const dots = [];
    if (q && q.slide === this.slideView.slideId) {
      for (const answer of q.state === "revealed" ? q.answers || [] : []) {
        dots.push(this.dot(answer.x, answer.y, "answer", answer.name));
      }
      if (this.mine && this.mine.question === q.id) dots.push(this.dot(this.mine.x, this.mine.y, "my-answer"));
    }
    this.layer.replaceChildren(...dots);
  }

  dot(x, y, className, name) {
    const [sx, sy] = this.overlay.toScreen(x, y);
    const group = svgElement("g", { class: className, transform: `translate(${sx} ${sy})` });
    group.append(svgElement("circle", { r: className === "my-answer" ? 7 : 6 }));
    if (name) {
      const label = svgElement("text", { x: 9, y: 4 });
      label.textContent = name;
      group.append(label);
    }
    return group;
  }
}

const data = document.getElementById("teach-data");
if (data) start(JSON.parse(data.textContent));
