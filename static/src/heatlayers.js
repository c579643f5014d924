// Heatmap layers and AI regions drawn over the slide. A layer is its one-pixel-per-cell image,
// stretched by a CSS matrix onto the cells' place on screen (so it follows pans, zooms and
// rotations exactly, at no cost per cell); regions are dashed outlines, marked as the AI's own.
import { svgElement } from "./overlay.js";

export class HeatLayers {
  constructor(overlay) {
    this.overlay = overlay;
    this.shown = []; // [{key, src, opacity, cell, rows, cols, label}]
    this.regions = []; // [{label, polygon}]
    // Beneath the annotations' SVG: people's drawings stay on top of the AI's.
    this.images = document.createElement("div");
    this.images.className = "ai-layers";
    overlay.layer.prepend(this.images);
    this.outlines = svgElement("g", { class: "ai-regions" });
    overlay.svg.prepend(this.outlines);
    overlay.onPaint(() => this.paint());
  }

  // ``layers``: what to draw, bottom first; images already shown are kept (no reload, no flicker).
  show(layers, regions) {
    const keep = new Map([...this.images.children].map((img) => [img.dataset.key, img]));
    const images = layers.map((layer) => {
      let img = keep.get(layer.key);
      if (!img) {
        img = document.createElement("img");
        img.className = "ai-heatmap";
        img.alt = "";
        img.decoding = "async";
        img.dataset.key = layer.key;
      }
      if (img.getAttribute("src") !== layer.src) img.src = layer.src;
      img.dataset.opacity = String(layer.opacity);
      img.dataset.colours = layer.colours;
      img.style.opacity = String(layer.opacity);
      img.style.width = `${layer.cols}px`;
      img.style.height = `${layer.rows}px`;
      img.title = layer.label;
      return img;
    });
    this.shown = layers;
    this.images.replaceChildren(...images);
    this.regions = regions;
    this.paint();
  }

  paint() {
    if (!this.overlay.image()) return;
    const byKey = new Map(this.shown.map((layer) => [layer.key, layer]));
    for (const img of this.images.children) {
      const layer = byKey.get(img.dataset.key);
      if (layer) img.style.transform = cellsToScreen(this.overlay, layer);
    }
    const shapes = this.regions.map((region) => {
      const points = region.polygon.map(([x, y]) => this.overlay.toScreen(x, y).join(",")).join(" ");
      const group = svgElement("g", { class: "ai-region" });
      group.append(svgElement("polygon", { points }));
      const [x, y] = this.overlay.toScreen(...region.polygon[0]);
      const caption = svgElement("text", { x: x + 6, y: y - 6, class: "caption" });
      caption.textContent = `AI · ${region.label}`; // text, never markup: an outside tool wrote it
      group.append(caption);
      return group;
    });
    this.outlines.replaceChildren(...shapes);
  }
}

// The matrix taking the image's CSS pixels (one per cell, origin at its top left) to the viewer:
// three corners of the grid in level-0 pixels, through Overlay.toScreen, give its two axes.
export function cellsToScreen(overlay, { cell, rows, cols }) {
  const [x0, y0] = overlay.toScreen(0, 0);
  const [x1, y1] = overlay.toScreen(cols * cell, 0);
  const [x2, y2] = overlay.toScreen(0, rows * cell);
  const m = [(x1 - x0) / cols, (y1 - y0) / cols, (x2 - x0) / rows, (y2 - y0) / rows, x0, y0];
  return `matrix(${m.map((v) => v.toFixed(6)).join(", ")})`;
}
