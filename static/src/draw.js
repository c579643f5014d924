// Drawing tools. While one is active the slide stops panning under the mouse and the
// overlay takes the gestures; points are taken in level-0 image pixels.
import { svgElement } from "./overlay.js";

export const TOOLS = {
  select: { key: "v", label: "Select / pan" },
  point: { key: "p", label: "Point" },
  line: { key: "l", label: "Ruler" },
  rect: { key: "b", label: "Rectangle" },
  ellipse: { key: "e", label: "Ellipse" },
  polygon: { key: "g", label: "Polygon" },
  freehand: { key: "d", label: "Freehand" },
  text: { key: "t", label: "Text note" },
};

const CLOSE_ENOUGH_PX = 6;
const DOUBLE_PRESS_MS = 500;

export class DrawingTools extends EventTarget {
  constructor(overlay, slideView, annotations) {
    super();
    this.overlay = overlay;
    this.slideView = slideView;
    this.annotations = annotations;
    this.tool = "select";
    this.color = "#e6194b";
    this.points = [];
    this.lastPressAt = -Infinity;
    this.dragging = false;
    this.preview = svgElement("g", { class: "drawing-preview" });
    overlay.svg.append(this.preview);
    const svg = overlay.svg;
    svg.addEventListener("pointerdown", (e) => this.down(e));
    svg.addEventListener("pointermove", (e) => this.move(e));
    svg.addEventListener("pointerup", (e) => this.up(e));
    overlay.onPaint(() => this.paintPreview());
  }

  use(tool) {
    if (!TOOLS[tool]) return;
    if (tool !== "select" && !this.annotations.rights.contribute) return;
    this.cancel();
    this.tool = tool;
    const drawing = tool !== "select";
    this.overlay.layer.classList.toggle("drawing", drawing);
    this.slideView.viewer.setMouseNavEnabled(!drawing);
    this.dispatchEvent(new Event("tool"));
  }

  cancel() {
    this.points = [];
    this.dragging = false;
    document.documentElement.classList.remove("stroke-in-progress");
    this.paintPreview();
  }

  down(event) {
    if (this.tool === "select" || event.button !== 0) return;
    event.preventDefault();
    const point = this.overlay.eventToImage(event);
    switch (this.tool) {
      case "point":
      case "text":
        this.commit(this.tool, [point]);
        break;
      case "polygon": {
        // A second press on the last corner (a double-click) or a press on the first closes it.
        const again = this.nearLast(event) && event.timeStamp - this.lastPressAt < DOUBLE_PRESS_MS;
        this.lastPressAt = event.timeStamp;
        if (this.points.length >= 3 && (this.nearFirst(event) || again)) {
          this.commit("polygon", this.points);
        } else if (!this.nearLast(event)) {
          this.points.push(point);
        }
        break;
      }
      default: // line, rect, ellipse, freehand: press, drag, release
        this.overlay.svg.setPointerCapture(event.pointerId);
        this.dragging = true;
        // A stroke that runs over the side panel must not select its text.
        document.documentElement.classList.add("stroke-in-progress");
        this.points = [point, point];
    }
    this.paintPreview();
  }

  move(event) {
    if (!this.dragging) {
      if (this.tool === "polygon" && this.points.length) {
        this.hover = this.overlay.eventToImage(event);
        this.paintPreview();
      }
      return;
    }
    const point = this.overlay.eventToImage(event);
    if (this.tool === "freehand") {
      const last = this.points[this.points.length - 1];
      if (distanceOnScreen(this.overlay, last, point) >= 2) this.points.push(point);
    } else {
      this.points[1] = point;
    }
    this.paintPreview();
  }

  up(event) {
    if (!this.dragging) return;
    this.dragging = false;
    document.documentElement.classList.remove("stroke-in-progress");
    const [first, second] = this.points;
    const tiny = distanceOnScreen(this.overlay, first, second || first) < 3 && this.tool !== "freehand";
    if (this.tool === "freehand" ? this.points.length >= 3 : !tiny) {
      this.commit(this.tool, this.tool === "freehand" ? this.points : [first, this.points[1]]);
    } else {
      this.cancel();
    }
    event.preventDefault();
  }

  // Enter finishes a polygon, Escape abandons the shape being drawn.
  key(event) {
    if (this.tool === "polygon" && event.key === "Enter" && this.points.length >= 3) {
      this.commit("polygon", this.points);
      return true;
    }
    if (event.key === "Escape" && (this.points.length || this.tool !== "select")) {
      this.points.length ? this.cancel() : this.use("select");
      return true;
    }
    return false;
  }

  commit(kind, points) {
    const id = this.annotations.add({ slide: this.slideView.slideId, kind, points, color: this.color });
    this.points = [];
    this.hover = null;
    this.paintPreview();
    this.dispatchEvent(Object.assign(new Event("drawn"), { annotationId: id, kind }));
  }

  nearFirst(event) {
    return this.points.length && distanceToEvent(this.overlay, this.points[0], event) < CLOSE_ENOUGH_PX;
  }

  nearLast(event) {
    const last = this.points[this.points.length - 1];
    return last && distanceToEvent(this.overlay, last, event) < CLOSE_ENOUGH_PX;
  }

  paintPreview() {
    this.preview.replaceChildren();
    if (!this.points.length || !this.overlay.image()) return;
    const points = this.tool === "polygon" && this.hover ? [...this.points, this.hover] : this.points;
    const shape = shapeFor({ kind: this.tool, points }, this.overlay);
    if (shape) {
      shape.setAttribute("stroke", this.color);
      this.preview.append(shape);
    }
  }
}

function distanceOnScreen(overlay, a, b) {
  const [ax, ay] = overlay.toScreen(...a);
  const [bx, by] = overlay.toScreen(...b);
  return Math.hypot(ax - bx, ay - by);
}

function distanceToEvent(overlay, point, event) {
  const box = overlay.viewer.element.getBoundingClientRect();
  const [x, y] = overlay.toScreen(...point);
  return Math.hypot(x - (event.clientX - box.left), y - (event.clientY - box.top));
}

// The SVG shape of an annotation at the current view (screen coordinates).
export function shapeFor(annotation, overlay) {
  const screen = (annotation.points || []).map(([x, y]) => overlay.toScreen(x, y));
  if (!screen.length) return null;
  const [[x0, y0], [x1, y1] = screen[0]] = screen;
  switch (annotation.kind) {
    case "point":
    case "text":
      return svgElement("circle", { cx: x0, cy: y0, r: 6, class: `shape ${annotation.kind}` });
    case "line":
      return svgElement("line", { x1: x0, y1: y0, x2: x1, y2: y1, class: "shape" });
    case "rect": {
      // Corners are opposite in image space; with rotation the screen shape is a polygon.
      const corners = [
        [annotation.points[0][0], annotation.points[0][1]],
        [annotation.points[1][0], annotation.points[0][1]],
        [annotation.points[1][0], annotation.points[1][1]],
        [annotation.points[0][0], annotation.points[1][1]],
      ].map(([x, y]) => overlay.toScreen(x, y).join(","));
      return svgElement("polygon", { points: corners.join(" "), class: "shape" });
    }
    case "ellipse": {
      const [[ax, ay], [bx, by]] = annotation.points;
      const steps = 48;
      const cx = (ax + bx) / 2;
      const cy = (ay + by) / 2;
      const rx = Math.abs(bx - ax) / 2;
      const ry = Math.abs(by - ay) / 2;
      const outline = [];
      for (let i = 0; i < steps; i++) {
        const t = (2 * Math.PI * i) / steps;
        outline.push(overlay.toScreen(cx + rx * Math.cos(t), cy + ry * Math.sin(t)).join(","));
      }
      return svgElement("polygon", { points: outline.join(" "), class: "shape" });
    }
    case "polygon":
    case "freehand":
      return svgElement(annotation.closed === false ? "polyline" : "polygon", {
        points: screen.map((p) => p.join(",")).join(" "),
        class: "shape",
      });
    default:
      return null;
  }
}
