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
    tools.addEventListener("drawn", (e) => {
      this.select(e.annotationId);
      if (e.kind === "text") this.editor.querySelector("[name=label]")?.focus();
    });
    this.overlay.svg.addEventListener("click", (event) => {
      const target = event.target.closest("[data-annotation-id]");
      if (target && this.tools.tool === "select") this.select(target.dataset.annotationId);
    });
    this.refresh();
  }

  describe(annotation) {
    const mpp = this.slideView.mpp();
    const { length, area } = measure(annotation);
    if (length !== undefined) return mpp ? formatLength(length * mpp) : `${Math.round(length)} px`;
    if (area !== undefined) return mpp ? formatArea(area * mpp * mpp) : `${Math.round(area)} px²`;
    return "";
  }

  onSlide() {
    return this.annotations.all().filter((a) => a.slide === this.slideView.slideId);
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
      button.querySelector(".meta").textContent = [measure, annotation.authorName].filter(Boolean).join(" · ");
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
    const xs = annotation.points.map((p) => p[0]);
    const ys = annotation.points.map((p) => p[1]);
    const width = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys)) * 2.5 || 2000;
    const view = this.slideView.view();
    this.slideView.goTo({
      slide: annotation.slide,
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
    if (document.activeElement !== label) label.value = annotation.label || "";
    label.disabled = !editable;
    form.querySelector("[name=color]").value = annotation.color || "#e6194b";
    form.querySelector("[name=color]").disabled = !editable;
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
      if (annotation.kind === "point" || annotation.kind === "text") shape.setAttribute("fill", annotation.color);
      group.append(shape);
      const caption = [annotation.label, annotation.kind === "line" ? this.describe(annotation) : ""]
        .filter(Boolean)
        .join(" · ");
      if (caption) {
        const [x, y] = this.overlay.toScreen(...annotation.points[0]);
        const text = svgElement("text", { x: x + 9, y: y - 9, class: "caption" });
        text.textContent = caption;
        group.append(text);
      }
      shapes.push(group);
    }
    this.shapes.replaceChildren(...shapes);
  }
}

export function bindEditor(panel) {
  const form = panel.editor;
  form.addEventListener("submit", (event) => event.preventDefault());
  form.querySelector("[name=label]").addEventListener("change", (event) => {
    panel.annotations.update(form.dataset.annotationId, { label: event.target.value.slice(0, 500) });
  });
  form.querySelector("[name=color]").addEventListener("change", (event) => {
    panel.annotations.update(form.dataset.annotationId, { color: event.target.value });
  });
  form.querySelector(".delete").addEventListener("click", () => panel.deleteSelected());
}
