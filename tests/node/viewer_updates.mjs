// Every kind of document update the viewer makes, made by the viewer's own code (npm yjs).
// Usage: node viewer_updates.mjs
// Prints JSON: {updates: [base64...], merged: base64, full: base64, state: base64, largest: n}.
import * as Y from "yjs";
import { Annotations, KINDS } from "../../static/src/annotations.js";

const doc = new Y.Doc();
const updates = [];
doc.on("update", (update) => updates.push(update));
const me = { id: 7, name: "Dr Zoë Ølund 🔬" };
const annotations = new Annotations(doc, me, { contribute: true, moderate: true });

// One of each kind, then a freehand outline of a large tumour traced at high zoom: a point
// every 2 screen pixels (draw.js), 20,000 of them.
const ids = KINDS.map((kind, i) =>
  annotations.add({ slide: "s1", kind, points: [[10.4 + i, 20.6], [30000.5, 41000.25]], color: "#e91e63" }),
);
const outline = [];
for (let i = 0; i < 20000; i++) {
  const t = (i / 20000) * 2 * Math.PI;
  outline.push([60000 + 25000 * Math.cos(t), 40000 + 18000 * Math.sin(t)]);
}
const freehand = annotations.add({ slide: "s1", kind: "freehand", points: outline, color: "#00bcd4" });
annotations.update(ids[0], { label: "Mitoses ✓ — 12/10 HPF", bookmark: true });
annotations.update(freehand, { label: "Tumour front", bookmark: false });
annotations.remove(ids[1]);
annotations.undo();
annotations.redo();
annotations.undo();

// A message as discussion.js posts it: up to 4,000 characters, here with characters outside
// the Basic Multilingual Plane (two UTF-16 units each).
const discussion = doc.getArray("discussion");
for (const text of ["Agree: grade 2.", "🔬".repeat(2000), "x".repeat(4000)]) {
  const message = new Y.Map();
  doc.transact(() => {
    discussion.push([message]);
    message.set("id", Math.random().toString(36).slice(2));
    message.set("author", String(me.id));
    message.set("authorName", me.name);
    message.set("text", text);
    message.set("created", new Date().toISOString());
    message.set("annotation", ids[0]);
  });
}
discussion.delete(0, 1);

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
process.stdout.write(
  JSON.stringify({
    updates: updates.map(b64),
    // What a client that has all of them sends merged to a server that has the first six: a
    // merge that leaves out the 2nd, 4th and 6th holds Skip structs where those are.
    merged: b64(Y.mergeUpdates(updates.filter((_, i) => i >= 6 || i % 2 === 0))),
    full: b64(Y.encodeStateAsUpdate(doc)),
    state: b64(Y.encodeStateVector(doc)),
    largest: Math.max(...updates.map((u) => u.length)),
  }) + "\n",
);
