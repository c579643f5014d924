// Snapshots: this view, or a region drawn on the slide, made into a PNG by the server (the
// pixels at full resolution, the annotations and a scale bar drawn in), then downloaded,
// posted to the discussion, or attached to the MDT outcome when the case is open in a meeting.
import { svgElement } from "./overlay.js";

export const SNAPSHOT_ID = /^[0-9a-f]{16}$/;

export class Snapshots {
  // ``endpoint``: where to POST; ``headers``: the CSRF token; ``discussion`` and ``meeting``
  // are absent in teaching (no discussion there, no outcome).
  constructor({ slideView, overlay, tools, panel, endpoint, headers, discussion = null, meeting = null }) {
    this.slideView = slideView;
    this.overlay = overlay;
    this.tools = tools;
    this.panel = panel;
    this.endpoint = endpoint;
    this.headers = headers;
    this.discussion = discussion;
    this.meeting = meeting;
    this.picking = null;
    this.last = null;
    this.preview = svgElement("rect", { class: "snapshot-region", hidden: "" });
    overlay.svg.append(this.preview);
    const $ = (name) => panel.querySelector(name);
    $(".snapshot-view").addEventListener("click", () => this.capture(this.viewRegion()));
    $(".snapshot-region-pick").addEventListener("click", () => this.pick());
    $(".snapshot-close").addEventListener("click", () => this.close());
    $(".snapshot-post").addEventListener("click", () => this.postToDiscussion());
    $(".snapshot-post").hidden = !discussion;
    $(".attach").hidden = !meeting;
    const svg = overlay.svg;
    svg.addEventListener("pointerdown", (e) => this.down(e));
    svg.addEventListener("pointermove", (e) => this.move(e));
    svg.addEventListener("pointerup", (e) => this.up(e));
    document.addEventListener("keydown", (event) => {
      if (this.key(event)) event.stopPropagation();
    }, true);
  }

  open() {
    this.panel.hidden = false;
    this.panel.querySelector(".snapshot-view").focus();
  }

  close() {
    this.cancelPick();
    this.panel.hidden = true;
  }

  // The slide area on screen, in level-0 pixels (its bounding box when rotated).
  viewRegion() {
    const image = this.slideView.image();
    if (!image) return null;
    const bounds = this.slideView.viewer.viewport.getBoundsNoRotate(true);
    const rect = image.viewportToImageRectangle(bounds);
    return { x: rect.x, y: rect.y, width: rect.width, height: rect.height };
  }

  pick() {
    this.tools.use("select");
    this.picking = { start: null };
    this.overlay.layer.classList.add("drawing", "picking-region");
    this.slideView.viewer.setMouseNavEnabled(false);
    this.say("Drag over the region to capture. Escape cancels.");
  }

  cancelPick() {
    if (!this.picking) return;
    this.picking = null;
    this.preview.setAttribute("hidden", "");
    this.overlay.layer.classList.remove("drawing", "picking-region");
    this.slideView.viewer.setMouseNavEnabled(this.tools.tool === "select");
  }

  down(event) {
    if (!this.picking || event.button !== 0) return;
    event.preventDefault();
    event.stopPropagation();
    this.overlay.svg.setPointerCapture(event.pointerId);
    this.picking.start = this.overlay.eventToImage(event);
    this.picking.end = this.picking.start;
  }

  move(event) {
    if (!this.picking || !this.picking.start) return;
    this.picking.end = this.overlay.eventToImage(event);
    const [x0, y0] = this.overlay.toScreen(...this.picking.start);
    const [x1, y1] = this.overlay.toScreen(...this.picking.end);
    for (const [name, value] of Object.entries({
      x: Math.min(x0, x1),
      y: Math.min(y0, y1),
      width: Math.abs(x1 - x0),
      height: Math.abs(y1 - y0),
    })) {
      this.preview.setAttribute(name, value);
    }
    this.preview.removeAttribute("hidden");
  }

  up(event) {
    if (!this.picking || !this.picking.start) return;
    event.preventDefault();
    const [[ax, ay], [bx, by]] = [this.picking.start, this.overlay.eventToImage(event)];
    this.cancelPick();
    this.capture({ x: Math.min(ax, bx), y: Math.min(ay, by), width: Math.abs(bx - ax), height: Math.abs(by - ay) });
  }

  key(event) {
    if (event.key === "Escape" && this.picking) {
      this.cancelPick();
      this.say("");
      return true;
    }
    return false;
  }

  async capture(region) {
    if (!region) return;
    const caption = this.panel.querySelector("[name=caption]").value.trim();
    const attach = this.meeting && this.panel.querySelector("[name=attach]").checked;
    const body = { slide: this.slideView.slideId, ...region, caption };
    if (attach) body.meeting = this.meeting.id;
    this.say("Capturing…");
    const response = await fetch(this.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...this.headers },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      this.say(answer.detail || answer.error || "The snapshot could not be made.");
      return;
    }
    this.last = answer;
    this.show(answer, attach);
  }

  show(snapshot, attached) {
    const result = this.panel.querySelector(".snapshot-result");
    result.hidden = false;
    const image = result.querySelector("img");
    image.src = snapshot.url;
    image.alt = snapshot.caption ? `Snapshot: ${snapshot.caption}` : "The snapshot";
    const download = result.querySelector(".snapshot-download");
    download.href = snapshot.download;
    this.say(
      `${snapshot.width} × ${snapshot.height} px` + (attached ? ", attached to this meeting's outcome." : "."),
    );
  }

  postToDiscussion() {
    if (!this.last || !this.discussion) return;
    this.discussion.post(this.last.caption || "Snapshot", null, this.last.id);
    this.say("Posted to the discussion.");
  }

  say(text) {
    this.panel.querySelector(".snapshot-status").textContent = text;
  }
}

// The snapshot an entry of the discussion names, as an image link (ids only: the message is
// anyone's to write).
export function snapshotFigure(snapshotId) {
  if (!SNAPSHOT_ID.test(String(snapshotId || ""))) return null;
  const url = `/snapshots/${snapshotId}.png`;
  const link = document.createElement("a");
  link.href = url;
  link.target = "_blank";
  link.rel = "noopener";
  link.className = "message-snapshot";
  const image = document.createElement("img");
  image.src = url;
  image.alt = "A snapshot of the slide";
  image.loading = "lazy";
  link.append(image);
  return link;
}
