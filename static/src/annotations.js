// The case's annotations (the contract's `annotations` map: id -> Y.Map) and the
// rules the server also enforces: you change your own; pathologists of the owning
// organisation may change anyone's. Undo and redo cover only your own changes.
import * as Y from "yjs";

export const KINDS = ["point", "line", "rect", "ellipse", "polygon", "freehand", "text"];

export class Annotations extends EventTarget {
  constructor(doc, me, rights) {
    super();
    this.doc = doc;
    this.me = me;
    this.rights = rights; // {contribute, moderate}
    this.map = doc.getMap("annotations");
    // Remote changes carry the provider as origin; only ours (origin null) are undoable.
    this.undoManager = new Y.UndoManager(this.map, { captureTimeout: 300 });
    this.map.observeDeep(() => this.dispatchEvent(new Event("change")));
    this.undoManager.on("stack-item-added", () => this.dispatchEvent(new Event("history")));
    this.undoManager.on("stack-item-popped", () => this.dispatchEvent(new Event("history")));
  }

  all() {
    const list = [];
    for (const [id, value] of this.map) {
      if (value instanceof Y.Map) list.push({ id, ...value.toJSON() });
    }
    return list.sort((a, b) => (a.created || "").localeCompare(b.created || "") || a.id.localeCompare(b.id));
  }

  get(id) {
    const value = this.map.get(id);
    return value instanceof Y.Map ? { id, ...value.toJSON() } : null;
  }

  mayEdit(annotation) {
    if (!this.rights.contribute) return false;
    return String(annotation.author) === String(this.me.id) || this.rights.moderate;
  }

  add({ slide, kind, points, label = "", color }) {
    const id = newId();
    const now = new Date().toISOString();
    const entry = new Y.Map();
    this.doc.transact(() => {
      this.map.set(id, entry);
      entry.set("slide", slide);
      entry.set("kind", kind);
      entry.set("points", points.map(([x, y]) => [round(x), round(y)]));
      entry.set("label", label);
      entry.set("color", color);
      entry.set("author", String(this.me.id));
      entry.set("authorName", this.me.name);
      entry.set("created", now);
      entry.set("updated", now);
    });
    this.undoManager.stopCapturing(); // each drawing is its own undo step
    return id;
  }

  update(id, fields) {
    const entry = this.map.get(id);
    if (!(entry instanceof Y.Map)) return;
    this.doc.transact(() => {
      for (const [key, value] of Object.entries(fields)) entry.set(key, value);
      entry.set("updated", new Date().toISOString());
    });
  }

  remove(id) {
    this.doc.transact(() => this.map.delete(id));
    this.undoManager.stopCapturing();
  }

  undo() {
    this.undoManager.undo();
  }

  redo() {
    this.undoManager.redo();
  }
}

// Random ids without crypto.randomUUID, which browsers offer only on https or localhost.
export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function round(value) {
  return Math.round(value * 10) / 10;
}

// Length of a line in level-0 pixels; area (square level-0 pixels) and perimeter (level-0
// pixels) of a closed shape.
export function measure(annotation) {
  const p = annotation.points || [];
  switch (annotation.kind) {
    case "line":
      return p.length === 2 ? { length: Math.hypot(p[1][0] - p[0][0], p[1][1] - p[0][1]) } : {};
    case "rect": {
      if (p.length !== 2) return {};
      const w = Math.abs(p[1][0] - p[0][0]);
      const h = Math.abs(p[1][1] - p[0][1]);
      return { area: w * h, perimeter: 2 * (w + h) };
    }
    case "ellipse": {
      if (p.length !== 2) return {};
      const a = Math.abs(p[1][0] - p[0][0]) / 2;
      const b = Math.abs(p[1][1] - p[0][1]) / 2;
      // Ramanujan's approximation: within 0.4% even for the thinnest ellipse.
      const perimeter = Math.PI * (3 * (a + b) - Math.sqrt((3 * a + b) * (a + 3 * b)));
      return { area: Math.PI * a * b, perimeter };
    }
    case "polygon":
    case "freehand":
      if (annotation.closed === false) return p.length >= 2 ? { length: ringLength(p) - closingEdge(p) } : {};
      return p.length >= 3 ? { area: shoelace(p), perimeter: ringLength(p) } : {};
    default:
      return {};
  }
}

function closingEdge(points) {
  const [x0, y0] = points[0];
  const [x1, y1] = points[points.length - 1];
  return Math.hypot(x1 - x0, y1 - y0);
}

function ringLength(points) {
  let total = 0;
  for (let i = 0; i < points.length; i++) {
    const [x0, y0] = points[i];
    const [x1, y1] = points[(i + 1) % points.length];
    total += Math.hypot(x1 - x0, y1 - y0);
  }
  return total;
}

function shoelace(points) {
  let twice = 0;
  for (let i = 0; i < points.length; i++) {
    const [x0, y0] = points[i];
    const [x1, y1] = points[(i + 1) % points.length];
    twice += x0 * y1 - x1 * y0;
  }
  return Math.abs(twice) / 2;
}
