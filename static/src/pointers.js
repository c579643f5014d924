// Everyone's pointer on the slide, with their name: sent in level-0 image pixels, so it
// lands on the same cell on every screen whatever the zoom or rotation. Hidden when idle.
import { svgElement } from "./overlay.js";

const IDLE_MS = 8000;
const TRAIL_MS = 1200;

export class Pointers {
  constructor(overlay, presence, slideView) {
    this.overlay = overlay;
    this.presence = presence;
    this.slideView = slideView;
    this.laser = false;
    this.shown = new Map(); // client id -> {element, trail, pointer, movedAt}
    this.trails = svgElement("g", { class: "laser-trails" });
    overlay.svg.append(this.trails);
    const element = slideView.viewer.element;
    element.addEventListener("pointermove", (event) => {
      const [x, y] = overlay.eventToImage(event);
      presence.out.set("pointer", { slide: slideView.slideId, x, y, laser: this.laser });
    });
    element.addEventListener("pointerleave", () => presence.out.set("pointer", null));
    presence.addEventListener("people", () => this.update());
    overlay.onPaint(() => this.paint());
    // Idle pointers fade out even when nothing else changes.
    setInterval(() => this.paint(), 500);
  }

  toggleLaser() {
    this.laser = !this.laser;
    return this.laser;
  }

  update() {
    const me = this.presence.clientId();
    const now = performance.now();
    const present = new Set();
    for (const person of this.presence.people()) {
      if (person.clientId === me) continue;
      present.add(person.clientId);
      let shown = this.shown.get(person.clientId);
      if (!shown) {
        const element = document.createElement("div");
        element.className = "remote-pointer";
        element.dataset.clientId = person.clientId;
        element.innerHTML = '<span class="dot"></span><span class="name"></span>';
        this.overlay.layer.append(element);
        const trail = svgElement("polyline", { class: "laser-trail" });
        this.trails.append(trail);
        shown = { element, trail, pointer: null, movedAt: 0, history: [] };
        this.shown.set(person.clientId, shown);
      }
      shown.element.querySelector(".name").textContent = person.user.name;
      shown.element.style.setProperty("--colour", person.user.colour);
      shown.trail.setAttribute("stroke", person.user.colour);
      const pointer = person.pointer;
      const moved = JSON.stringify(pointer) !== JSON.stringify(shown.pointer);
      if (moved) {
        shown.pointer = pointer;
        shown.movedAt = now;
        if (pointer && pointer.laser) shown.history.push({ x: pointer.x, y: pointer.y, at: now });
      }
    }
    for (const [clientId, shown] of this.shown) {
      if (!present.has(clientId)) {
        shown.element.remove();
        shown.trail.remove();
        this.shown.delete(clientId);
      }
    }
    this.paint();
  }

  paint() {
    if (!this.overlay.image()) return;
    const now = performance.now();
    for (const shown of this.shown.values()) {
      const pointer = shown.pointer;
      const visible = pointer && pointer.slide === this.slideView.slideId && now - shown.movedAt < IDLE_MS;
      shown.element.hidden = !visible;
      if (visible) {
        const [sx, sy] = this.overlay.toScreen(pointer.x, pointer.y);
        shown.element.style.transform = `translate(${sx}px, ${sy}px)`;
        shown.element.dataset.x = pointer.x.toFixed(1);
        shown.element.dataset.y = pointer.y.toFixed(1);
        shown.element.dataset.slide = pointer.slide;
      }
      shown.history = shown.history.filter((h) => now - h.at < TRAIL_MS);
      const trail = visible && pointer.laser ? shown.history : [];
      shown.trail.setAttribute(
        "points",
        trail.map((h) => this.overlay.toScreen(h.x, h.y).join(",")).join(" "),
      );
    }
  }
}
