// The case discussion: messages kept in the shared document (`discussion`, a Y.Array
// of Y.Map), each with its author and time, optionally about one annotation.
import * as Y from "yjs";
import { newId } from "./annotations.js";
import { snapshotFigure } from "./snapshot.js";
import { ukDateTime } from "./ukclock.js";

export class Discussion {
  constructor({ doc, me, rights, list, form, panel }) {
    this.array = doc.getArray("discussion");
    this.doc = doc;
    this.me = me;
    this.list = list;
    this.form = form;
    this.panel = panel;
    // Everyone on the clinical team posts, read-only or not; students read (collab.domain.Access).
    form.hidden = !rights.discuss;
    const why = document.getElementById("message-why");
    if (why) why.hidden = Boolean(rights.discuss);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = form.elements.message.value.trim();
      if (!text) return;
      const about = form.elements.about.checked ? panel.selected : null;
      this.post(text.slice(0, 4000), about);
      form.elements.message.value = "";
    });
    form.elements.message.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    this.array.observeDeep(() => this.render());
    panel.annotations.addEventListener("change", () => this.render());
    this.render();
  }

  post(text, annotationId, snapshotId = null) {
    const message = new Y.Map();
    this.doc.transact(() => {
      this.array.push([message]);
      message.set("id", newId());
      message.set("author", String(this.me.id));
      message.set("authorName", this.me.name);
      message.set("text", text);
      message.set("created", new Date().toISOString());
      if (annotationId) message.set("annotation", annotationId);
      if (snapshotId) message.set("snapshot", snapshotId);
    });
  }

  render() {
    const items = this.array.toArray().map((entry) => {
      const message = entry instanceof Y.Map ? entry.toJSON() : {};
      const item = document.createElement("li");
      item.className = "message";
      item.dataset.author = message.author;
      const head = document.createElement("div");
      head.className = "message-head";
      const who = document.createElement("strong");
      who.textContent = message.authorName || "Someone";
      const when = document.createElement("time");
      when.dateTime = message.created || "";
      when.textContent = message.created ? ukDateTime(message.created) : "";
      head.append(who, " ", when);
      const body = document.createElement("p");
      body.textContent = message.text || "";
      item.append(head, body);
      const snapshot = snapshotFigure(message.snapshot);
      if (snapshot) item.append(snapshot);
      const annotation = message.annotation && this.panel.annotations.get(message.annotation);
      if (annotation) {
        const link = document.createElement("button");
        link.type = "button";
        link.className = "about-annotation";
        link.textContent = `about: ${annotation.label || annotation.kind}`;
        link.addEventListener("click", () => this.panel.jumpTo(annotation.id));
        item.append(link);
      }
      return item;
    });
    this.list.replaceChildren(...items);
    this.list.scrollTop = this.list.scrollHeight;
  }
}
