// Annotations on the slide and in the side list: jump to one, select it, edit its
// label and colour, delete it (when allowed), see its length or area.
import { measure } from "./annotations.js";
import { shapeFor, TOOLS } from "./draw.js";
import { svgElement } from "./overlay.js";
import { formatArea, formatLength } from "./slideview.js";

export class AnnotationPanel {
  constructor({ overlay, slideView, annotations, tools, list, editor }) {
    this.overlay = overlay;
    this.slideView = slideView;
    this.annotations = annotations;
    this.tools = tools;
    this.list = list;
    this.editor = editor;
    this.selected = null;
    this.shapes = svgElement("g", { class: "annotations" });
    overlay.svg.prepend(this.shapes);
    overlay.onPaint(() => this.paint());
    annotations.addEventListener("change", () => this.refresh());
    slideView.addEventListener("slide", () => this.refresh());
    slideView.addEventListener("info", () => this.refresh()); // lengths in µm once the pixel size is known
    tools.addEventListener("drawn", (e) => {
      this.select(e.annotationId);
      if (e.kind === "text") this.editor.querySelector("[name=label]")?.focus();
    });
    // A click (not a drag) on a shape selects it; on bare slide it clears the selection.
    slideView.viewer.addHandler("canvas-click", (event) => {
      if (!event.quick || this.tools.tool !== "select") return;
      const hit = this.hitTest(event.position.x, event.position.y);
      if (hit) this.select(hit);
      else if (this.selected) this.select(null);
    });
    this.refresh();
  }

  // The topmost annotation under a point of the viewer element (CSS pixels), if any.
  hitTest(x, y) {
    const near = 6;
    for (const annotation of this.onSlide().reverse()) {
      const outline = outlineFor(annotation).map(([ix, iy]) => this.overlay.toScreen(ix, iy));
      if (!outline.length) continue;
      if (outline.length === 1) {
        if (Math.hypot(outline[0][0] - x, outline[0][1] - y) < near + 4) return annotation.id;
        continue;
      }
      const closed = annotation.kind !== "line";
      if (closed && inside(outline, x, y)) return annotation.id;
      for (let i = 0; i < outline.length - (closed ? 0 : 1); i++) {
        const [ax, ay] = outline[i];
        const [bx, by] = outline[(i + 1) % outline.length];
        if (distanceToSegment(x, y, ax, ay, bx, by) < near) return annotation.id;
      }
    }
    return null;
  }

  describe(annotation) {
    const mpp = this.slideView.mpp();
    const { length, area, perimeter } = measure(annotation);
    if (length !== undefined) return mpp ? formatLength(length * mpp) : `${Math.round(length)} px`;
    if (area !== undefined) {
      const size = mpp ? formatArea(area * mpp * mpp) : `${Math.round(area)} px²`;
      const around = mpp ? formatLength(perimeter * mpp) : `${Math.round(perimeter)} px`;
      return `${size}, perimeter ${around}`;
    }
    return "";
  }

  // ``until`` (an ISO time, set while the timeline replays) hides what was made later.
  onSlide() {
    return this.annotations
      .all()
      .filter((a) => a.slide === this.slideView.slideId && !(this.until && a.created > this.until));
  }

  refresh() {
    if (this.selected && !this.annotations.get(this.selected)) this.selected = null;
    const items = this.onSlide().map((annotation) => {
      const item = document.createElement("li");
      item.dataset.annotationId = annotation.id;
      item.dataset.kind = annotation.kind;
      if (annotation.id === this.selected) item.setAttribute("aria-current", "true");
      const button = document.createElement("button");
      button.type = "button";
      button.style.setProperty("--colour", annotation.color || "#e6194b");
      const title = annotation.label || TOOLS[annotation.kind]?.label || annotation.kind;
      const measure = this.describe(annotation);
      button.innerHTML = '<span class="swatch"></span><span class="title"></span><span class="meta"></span>';
      button.querySelector(".title").textContent = title;
      const bookmarked = annotation.bookmark === true ? "MDT region" : "";
      button.querySelector(".meta").textContent = [measure, annotation.authorName, bookmarked].filter(Boolean).join(" · ");
      button.addEventListener("click", () => this.jumpTo(annotation.id));
      item.append(button);
      return item;
    });
    this.list.replaceChildren(...items);
    if (!items.length) {
      const empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "No annotations on this slide yet.";
      this.list.append(empty);
    }
    this.renderEditor();
    this.paint();
  }

  select(id) {
    this.selected = id;
    this.refresh();
  }

  jumpTo(id) {
    const annotation = this.annotations.get(id);
    if (!annotation) return;
    this.select(id);
    this.flyTo(annotation.slide, annotation.points);
  }

  // Flies to a shape (points in level-0 pixels) on a slide, framing it with room around it;
  // AI regions (static/src/analysisoverlays.js) fly the same way.
  flyTo(slide, points) {
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const width = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys)) * 2.5 || 2000;
    const view = this.slideView.view();
    this.slideView.goTo({
      slide,
      x: (Math.max(...xs) + Math.min(...xs)) / 2,
      y: (Math.max(...ys) + Math.min(...ys)) / 2,
      width,
      rotation: view ? view.rotation : 0,
    });
  }

  deleteSelected() {
    const annotation = this.selected && this.annotations.get(this.selected);
    if (annotation && this.annotations.mayEdit(annotation)) this.annotations.remove(annotation.id);
  }

  renderEditor() {
    const annotation = this.selected && this.annotations.get(this.selected);
    this.editor.hidden = !annotation;
    if (!annotation) return;
    const editable = this.annotations.mayEdit(annotation);
    const form = this.editor;
    form.dataset.annotationId = annotation.id;
    const label = form.querySelector("[name=label]");
    // Another annotation was selected while a label was being typed: that label goes to the
    // annotation it was typed for (blur commits it, see bindEditor), never to this one.
    if (document.activeElement === label && label.dataset.editing !== annotation.id) label.blur();
    if (document.activeElement !== label) label.value = annotation.label || "";
    label.disabled = !editable;
    form.querySelector("[name=color]").value = annotation.color || "#e6194b";
    form.querySelector("[name=color]").disabled = !editable;
    // Shown where it can be changed, or where it is set (a region to go to in the meeting).
    form.querySelector("[name=bookmark]").checked = annotation.bookmark === true;
    form.querySelector("[name=bookmark]").disabled = !editable;
    form.querySelector(".bookmark").hidden = !editable && annotation.bookmark !== true;
    form.querySelector(".delete").hidden = !editable;
    form.querySelector(".about").textContent = [
      TOOLS[annotation.kind]?.label || annotation.kind,
      this.describe(annotation),
      annotation.authorName ? `by ${annotation.authorName}` : "",
      editable ? "" : "(read-only for you)",
    ]
      .filter(Boolean)
      .join(" · ");
  }

  paint() {
    if (!this.overlay.image()) return;
    const shapes = [];
    for (const annotation of this.onSlide()) {
      const shape = shapeFor(annotation, this.overlay);
      if (!shape) continue;
      const group = svgElement("g", { "data-annotation-id": annotation.id, class: "annotation" });
      if (annotation.id === this.selected) group.classList.add("selected");
      shape.setAttribute("stroke", annotation.color || "#e6194b");
      if (annotation.kind === "point" || annotation.kind === "text") shape.style.fill = annotation.color;
      group.append(shape);
      const caption = [annotation.label, annotation.kind === "line" ? this.describe(annotation) : ""]
        .filter(Boolean)
        .join(" · ");
      if (caption) {
        // A ruler is captioned at its middle, a shape at its first point.
        const [x, y] = this.overlay.toScreen(...captionAnchor(annotation));
        const text = svgElement("text", { x: x + 9, y: y - 9, class: "caption" });
        text.textContent = caption;
        group.append(text);
      }
      shapes.push(group);
    }
    this.shapes.replaceChildren(...shapes);
    separateCaptions([...this.shapes.querySelectorAll("text.caption")]);
  }
}

export function bindEditor(panel) {
  const form = panel.editor;
  form.addEventListener("submit", (event) => event.preventDefault());
  const label = form.querySelector("[name=label]");
  // A label belongs to the annotation selected when typing began.
  label.addEventListener("focus", () => {
    label.dataset.editing = form.dataset.annotationId;
  });
  label.addEventListener("change", () => {
    panel.annotations.update(label.dataset.editing || form.dataset.annotationId, { label: label.value.slice(0, 500) });
  });
  // Enter commits the label and gives the keys back to the slide, so that the next shortcut
  // (a tool, a rotation) is not typed into the label.
  label.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    label.blur();
    const canvas = document.querySelector("#viewer .openseadragon-canvas");
    if (canvas) canvas.focus({ preventScroll: true });
  });
  form.querySelector("[name=color]").addEventListener("change", (event) => {
    panel.annotations.update(form.dataset.annotationId, { color: event.target.value });
  });
  form.querySelector("[name=bookmark]").addEventListener("change", (event) => {
    panel.annotations.update(form.dataset.annotationId, { bookmark: event.target.checked });
  });
  form.querySelector(".delete").addEventListener("click", () => panel.deleteSelected());
}

function captionAnchor(annotation) {
  const p = annotation.points;
  if (annotation.kind === "line" && p.length >= 2) return [(p[0][0] + p[1][0]) / 2, (p[0][1] + p[1][1]) / 2];
  return p[0];
}

// Captions that would cover one another (a ruler from a region's corner, shapes drawn close
// together) are moved down, one line at a time, until each can be read.
function separateCaptions(texts) {
  const placed = [];
  const overlaps = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  for (const text of texts) {
    let box = text.getBBox();
    for (let tries = 0; tries < 20 && placed.some((other) => overlaps(box, other)); tries++) {
      text.setAttribute("y", Number(text.getAttribute("y")) + box.height + 2);
      box = text.getBBox();
    }
    placed.push(box);
  }
}

// The points that outline an annotation, in level-0 pixels.
function outlineFor(annotation) {
  const p = annotation.points || [];
  if (annotation.kind === "rect" && p.length >= 2) {
    return [p[0], [p[1][0], p[0][1]], p[1], [p[0][0], p[1][1]]];
  }
  if (annotation.kind === "ellipse" && p.length >= 2) {
    const [[ax, ay], [bx, by]] = p;
    const outline = [];
    for (let i = 0; i < 32; i++) {
      const t = (2 * Math.PI * i) / 32;
      outline.push([(ax + bx) / 2 + (Math.abs(bx - ax) / 2) * Math.cos(t), (ay + by) / 2 + (Math.abs(by - ay) / 2) * Math.sin(t)]);
    }
    return outline;
  }
  return p;
}

function inside(polygon, x, y) {
  let crossings = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) crossings = !crossings;
  }
  return crossings;
}

function distanceToSegment(x, y, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const t = dx || dy ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy))) : 0;
  return Math.hypot(x - (ax + t * dx), y - (ay + t * dy));
}
