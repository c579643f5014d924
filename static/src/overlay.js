// A layer over the slide that redraws whenever the view moves, and the coordinate
// conversions between level-0 image pixels and the viewer element's CSS pixels.
import OpenSeadragon from "openseadragon";

const SVG = "http://www.w3.org/2000/svg";

export function svgElement(name, attributes = {}) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

export class Overlay {
  constructor(viewer) {
    this.viewer = viewer;
    this.layer = document.createElement("div");
    this.layer.className = "overlay-layer";
    this.svg = svgElement("svg", { class: "annotation-layer" });
    this.layer.append(this.svg);
    viewer.canvas.append(this.layer);
    this.painters = [];
    const paint = () => this.paint();
    viewer.addHandler("update-viewport", paint);
    viewer.addHandler("open", paint);
    viewer.addHandler("resize", paint);
  }

  onPaint(painter) {
    this.painters.push(painter);
  }

  paint() {
    if (!this.image()) return;
    for (const painter of this.painters) painter();
  }

  image() {
    return this.viewer.world.getItemAt(0);
  }

  // Level-0 image pixels -> CSS pixels inside the viewer element.
  toScreen(x, y) {
    const image = this.image();
    const point = image.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
    return [point.x, point.y];
  }

  // CSS pixels inside the viewer element -> level-0 image pixels.
  toImage(screenX, screenY) {
    const image = this.image();
    const point = image.viewerElementToImageCoordinates(new OpenSeadragon.Point(screenX, screenY));
    return [point.x, point.y];
  }

  // Screen pixels per level-0 image pixel at the current zoom.
  scale() {
    const [x0, y0] = this.toScreen(0, 0);
    const [x1, y1] = this.toScreen(1000, 0);
    return Math.hypot(x1 - x0, y1 - y0) / 1000;
  }

  eventToImage(event) {
    const box = this.viewer.element.getBoundingClientRect();
    return this.toImage(event.clientX - box.left, event.clientY - box.top);
  }
}
