// Slides side by side, in step: the case's main viewer and up to three more slides of the case
// (H&E beside its immunostains). Each other slide shows the main view mapped through its own
// offset (level-0 pixels of that slide) and rotation, set with "Align", so serial sections stay
// registered; a pan or zoom in any of them moves them all. The layout travels with the presence
// `view` (its `grid`), so whoever follows sees the same slides at the same places.
import { Overlay } from "./overlay.js";
import { Pointers } from "./pointers.js";
import { SlideView } from "./slideview.js";

const MAX_SLIDES = 4;
const GESTURES = ["canvas-drag", "canvas-scroll", "canvas-key", "canvas-pinch"];

export class Compare extends EventTarget {
  constructor({ slideView, presence, slides, wrap, button, strip }) {
    super();
    this.main = slideView;
    this.presence = presence;
    this.slides = slides; // [{id, stain}] in the case's order
    this.wrap = wrap;
    this.button = button;
    this.strip = strip;
    this.cells = []; // the slides beside the main one
    this.caption = document.createElement("span");
    this.caption.className = "cell-caption main-caption";
    slideView.addEventListener("view", () => this.sync());
    slideView.addEventListener("slide", () => this.mainChanged());
    button.hidden = slides.length < 2;
    button.addEventListener("click", () => (this.cells.length ? this.close() : this.open()));
    presence.gridOf = () => this.layout();
    presence.addEventListener("grid", (event) => this.apply(event.detail));
  }

  // The layout as it travels: slide ids in order (the main one first) and each other one's
  // offset and rotation; null for one slide.
  layout() {
    if (!this.cells.length) return null;
    return {
      slides: [this.main.slideId, ...this.cells.map((c) => c.slideId)],
      offsets: Object.fromEntries(this.cells.map((c) => [c.slideId, { ...c.offset }])),
    };
  }

  // Side by side with the main slide and the next one of the case (or those asked for).
  open(slideIds = null, offsets = {}) {
    const others = slideIds || [this.slides.find((s) => s.id !== this.main.slideId)?.id].filter(Boolean);
    for (const id of others.slice(0, MAX_SLIDES - 1)) {
      if (id !== this.main.slideId && !this.cells.some((c) => c.slideId === id)) this.addCell(id, offsets[id]);
    }
    this.arranged();
  }

  close() {
    for (const cell of this.cells) this.removeCell(cell);
    this.cells = [];
    this.arranged();
  }

  // Add or remove one slide (from the slide picker while side by side).
  toggle(slideId) {
    const cell = this.cells.find((c) => c.slideId === slideId);
    if (cell) {
      this.removeCell(cell);
      this.cells = this.cells.filter((c) => c !== cell);
    } else if (slideId !== this.main.slideId && this.cells.length < MAX_SLIDES - 1) {
      this.addCell(slideId);
    }
    this.arranged();
  }

  // A followed person's layout: the same slides, offsets and rotations.
  apply(grid) {
    const wanted = grid && Array.isArray(grid.slides) ? grid.slides.slice(1, MAX_SLIDES) : [];
    const known = wanted.filter((id) => this.slides.some((s) => s.id === id));
    const current = this.cells.map((c) => c.slideId);
    if (known.join() !== current.join()) {
      for (const cell of this.cells) this.removeCell(cell);
      this.cells = [];
      for (const id of known) this.addCell(id);
    }
    for (const cell of this.cells) {
      const offset = grid && grid.offsets && grid.offsets[cell.slideId];
      if (offset) cell.offset = sanitised(offset);
    }
    this.arranged(false);
  }

  addCell(slideId, offset) {
    const slide = this.slides.find((s) => s.id === slideId);
    if (!slide) return;
    const element = document.createElement("div");
    element.className = "viewer-cell";
    element.dataset.slideId = slideId;
    const viewerElement = document.createElement("div");
    viewerElement.className = "cell-viewer";
    const bar = document.createElement("div");
    bar.className = "cell-bar";
    const name = document.createElement("span");
    name.className = "cell-caption";
    name.textContent = slideName(this.slides, slideId);
    const left = cellButton("⟲", "Rotate this slide anticlockwise against the others", "rotate-left");
    const right = cellButton("⟳", "Rotate this slide clockwise against the others", "rotate-right");
    const align = cellButton("Align", "Move this slide alone to line it up; press again to lock it", "align");
    align.setAttribute("aria-pressed", "false");
    bar.append(name, left, right, align);
    element.append(viewerElement, bar);
    this.wrap.append(element);
    // No bounds: lined up with the main slide, this one may rightly show past its own edge.
    const view = new SlideView(viewerElement, this.slides, { navigator: false, bounded: false });
    const overlay = new Overlay(view.viewer);
    const cell = {
      slideId,
      element,
      view,
      overlay,
      offset: sanitised(offset || {}),
      aligning: false,
      applied: null,
      gesturing: false, // the user is moving this slide (not the sync, not OpenSeadragon's bounds)
    };
    cell.pointers = new Pointers(overlay, this.presence, view);
    left.addEventListener("click", () => this.turn(cell, -90));
    right.addEventListener("click", () => this.turn(cell, 90));
    align.addEventListener("click", () => this.align(cell, align));
    view.addEventListener("view", () => this.cellMoved(cell));
    view.addEventListener("info", () => this.sync());
    // A gesture here is the user's own, as in the main viewer: it breaks away from a followed view,
    // and it alone moves the grid from here (the sync's own moves and the viewer keeping the slide
    // in bounds must not: they would push the main view about).
    for (const event of GESTURES) {
      view.viewer.addHandler(event, () => {
        cell.gesturing = true;
        this.presence.breakAway();
      });
    }
    view.viewer.addHandler("animation-finish", () => this.cellSettled(cell));
    view.show(slideId);
    this.cells.push(cell);
  }

  removeCell(cell) {
    cell.view.viewer.destroy();
    cell.element.remove();
  }

  // The grid's shape, the picker's marks, the others told.
  arranged(announce = true) {
    const count = this.cells.length + 1;
    this.wrap.classList.toggle("grid", count > 1);
    this.wrap.dataset.cells = String(count);
    if (count > 1) {
      this.caption.textContent = slideName(this.slides, this.main.slideId);
      this.wrap.append(this.caption);
    } else {
      this.caption.remove();
    }
    this.button.textContent = count > 1 ? "Single slide" : "Side by side";
    this.button.setAttribute("aria-pressed", String(count > 1));
    for (const link of this.strip?.querySelectorAll("a[data-slide-id]") || []) {
      const beside = this.cells.some((c) => c.slideId === link.dataset.slideId);
      link.classList.toggle("beside", beside);
    }
    this.sync();
    if (announce) this.presence.viewChanged();
    this.dispatchEvent(new Event("layout"));
  }

  mainChanged() {
    // The main slide cannot also sit beside itself.
    const clash = this.cells.find((c) => c.slideId === this.main.slideId);
    if (clash) {
      this.removeCell(clash);
      this.cells = this.cells.filter((c) => c !== clash);
      this.arranged();
    } else if (this.cells.length) {
      this.caption.textContent = slideName(this.slides, this.main.slideId);
    }
  }

  // Level-0 pixels of a cell's slide per level-0 pixel of the main one: by the scanners'
  // resolutions when both give theirs, else one to one.
  ratio(cell) {
    const main = this.main.mpp();
    const other = cell.view.mpp();
    return main && other ? main / other : 1;
  }

  mapped(cell, view) {
    const r = this.ratio(cell);
    return {
      slide: cell.slideId,
      x: view.x * r + cell.offset.dx,
      y: view.y * r + cell.offset.dy,
      width: view.width * r,
      rotation: (((view.rotation || 0) + cell.offset.rotation) % 360 + 360) % 360,
    };
  }

  unmapped(cell, view) {
    const r = this.ratio(cell);
    return {
      slide: this.main.slideId,
      x: (view.x - cell.offset.dx) / r,
      y: (view.y - cell.offset.dy) / r,
      width: view.width / r,
      rotation: (((view.rotation || 0) - cell.offset.rotation) % 360 + 360) % 360,
    };
  }

  sync() {
    const view = this.main.view();
    if (!view) return;
    for (const cell of this.cells) {
      if (cell.aligning || !cell.view.image() || cell.view.slideId !== cell.slideId) continue;
      const target = this.mapped(cell, view);
      cell.applied = target;
      cell.view.goTo(target, true);
    }
  }

  // A cell's own view changed: ours (the sync), the user lining it up, or the user moving the
  // whole grid from it.
  cellMoved(cell) {
    const now = cell.view.view();
    if (!now || cell.aligning || !cell.gesturing) return;
    if (cell.applied && near(now, cell.applied)) return;
    this.main.goTo(this.unmapped(cell, now), true);
  }

  // A cell came to rest: the user's move goes to the whole grid; anything else that moved it
  // (its own viewer's reaction to a resize or an opened slide) is undone, so that every cell
  // shows exactly the main view mapped through its offset.
  cellSettled(cell) {
    const now = cell.view.view();
    const gesture = cell.gesturing;
    cell.gesturing = false;
    if (!now || cell.aligning || !cell.applied || near(now, cell.applied)) return;
    if (gesture) this.main.goTo(this.unmapped(cell, now), true);
    else cell.view.goTo(cell.applied, true);
  }

  turn(cell, degrees) {
    cell.offset.rotation = (((cell.offset.rotation + degrees) % 360) + 360) % 360;
    this.sync();
    this.presence.viewChanged();
  }

  align(cell, button) {
    cell.aligning = !cell.aligning;
    button.setAttribute("aria-pressed", String(cell.aligning));
    cell.element.classList.toggle("aligning", cell.aligning);
    if (cell.aligning) return;
    // Locked again: the offset is wherever the user put this slide against the main view.
    const main = this.main.view();
    const now = cell.view.view();
    if (main && now) {
      const r = this.ratio(cell);
      cell.offset = sanitised({ dx: now.x - main.x * r, dy: now.y - main.y * r, rotation: now.rotation - main.rotation });
    }
    this.sync();
    this.presence.viewChanged();
  }

  // Every viewer's view, the main one first, with its width on screen (for tests and tools).
  views() {
    const all = [{ view: this.main, element: this.main.element }, ...this.cells.map((c) => ({ view: c.view, element: c.view.element }))];
    return all.map(({ view, element }) => ({ ...view.view(), cssWidth: element.getBoundingClientRect().width }));
  }
}

function cellButton(text, title, name) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = name;
  button.textContent = text;
  button.title = title;
  button.setAttribute("aria-label", title);
  return button;
}

function slideName(slides, slideId) {
  const index = slides.findIndex((s) => s.id === slideId);
  const slide = slides[index];
  return slide ? `Slide ${index + 1}${slide.stain ? ` · ${slide.stain}` : ""}` : "";
}

function sanitised(offset) {
  const number = (value) => (Number.isFinite(Number(value)) ? Number(value) : 0);
  return { dx: number(offset.dx), dy: number(offset.dy), rotation: ((number(offset.rotation) % 360) + 360) % 360 };
}

// The same view within a hundred-thousandth of the field: a redraw, not a move.
function near(a, b) {
  const tolerance = b.width / 1e5;
  return (
    a.slide === b.slide &&
    Math.abs(a.x - b.x) < tolerance &&
    Math.abs(a.y - b.y) < tolerance &&
    Math.abs(a.width - b.width) < tolerance &&
    Math.abs(((a.rotation - b.rotation + 540) % 360) - 180) < 0.01
  );
}
