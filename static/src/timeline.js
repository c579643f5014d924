// Catch-up: the presenter's path through the case (where they looked, and when) and when
// each annotation was made, replayable on the page for anyone who joined late or re-opens
// the case after a meeting. The server keeps the path (GET /api/cases/{id}/timeline).
// Replaying is local: it leaves any follow, and "Back to live" returns to the live view.

import { ukTime } from "./ukclock.js";

const PLAY_SPEED = 8; // replay runs this many times faster than the meeting did
const TICK_MS = 100;
const MAX_IDLE_MS = 5000; // longer stretches with nothing happening are jumped over

const clock = ukTime;

export class Timeline extends EventTarget {
  constructor({ caseId, slides, slideView, presence, panel, overlay, root, toggle }) {
    super();
    Object.assign(this, { caseId, slideView, presence, panel, overlay, root, toggle });
    this.slideNames = new Map(slides.map((s, i) => [s.id, `Slide ${i + 1}${s.stain ? ` · ${s.stain}` : ""}`]));
    this.path = [];
    this.made = [];
    this.times = [];
    this.start = 0;
    this.end = 0;
    this.at = 0; // replay position, ms since the epoch
    this.timer = null;
    this.liveView = null;
    this.scrub = root.querySelector(".scrub");
    this.readout = root.querySelector(".clock");
    this.playButton = root.querySelector(".play");
    this.events = root.querySelector(".events");
    this.summary = root.querySelector(".summary");
    toggle.addEventListener("click", () => (this.root.hidden ? this.open() : this.close()));
    root.querySelector(".close").addEventListener("click", () => this.close());
    this.playButton.addEventListener("click", () => (this.timer ? this.pause() : this.play()));
    this.scrub.addEventListener("input", () => {
      this.pause();
      this.seek(this.start + Number(this.scrub.value));
    });
  }

  async open() {
    this.liveView = this.slideView.view();
    this.presence.unfollow();
    this.root.hidden = false;
    this.toggle.setAttribute("aria-pressed", "true");
    this.summary.textContent = "Loading…";
    const response = await fetch(`/api/cases/${encodeURIComponent(this.caseId)}/timeline`, {
      credentials: "same-origin",
    });
    if (!response.ok) {
      this.summary.textContent = "The timeline could not be loaded. Try again in a moment.";
      return;
    }
    const { path, annotations } = await response.json();
    this.path = path.map((s) => ({ ...s, t: Date.parse(s.at) }));
    this.made = annotations.map((a) => ({ ...a, t: Date.parse(a.created) })).filter((a) => !Number.isNaN(a.t));
    const times = [...this.path.map((s) => s.t), ...this.made.map((a) => a.t)];
    if (!times.length) {
      this.summary.textContent = "Nothing to replay yet: nobody has presented this case.";
      this.events.replaceChildren();
      this.scrub.disabled = this.playButton.disabled = true;
      return;
    }
    this.times = times.sort((a, b) => a - b);
    this.start = Math.min(...times);
    this.end = Math.max(...times);
    this.scrub.disabled = this.playButton.disabled = false;
    this.scrub.max = String(this.end - this.start);
    const stops = this.stops().length;
    const made = this.made.length;
    this.summary.textContent = `${clock(this.start)} – ${clock(this.end)}: ${stops} ${stops === 1 ? "stop" : "stops"}, ${made} ${made === 1 ? "annotation" : "annotations"}.`;
    this.renderEvents();
    this.seek(this.start);
    this.dispatchEvent(new Event("open"));
  }

  close() {
    this.pause();
    this.root.hidden = true;
    this.toggle.setAttribute("aria-pressed", "false");
    this.panel.until = null;
    this.panel.refresh();
    this.overlay.paint();
    if (this.liveView) this.slideView.goTo(this.liveView);
  }

  // Consecutive samples of one person on one slide make one stop in the list.
  stops() {
    const stops = [];
    for (const sample of this.path) {
      const last = stops[stops.length - 1];
      if (last && last.user_id === sample.user_id && last.slide === sample.slide) continue;
      stops.push(sample);
    }
    return stops;
  }

  renderEvents() {
    const rows = [
      ...this.stops().map((s) => ({ t: s.t, kind: "view", text: `${s.name} showed ${this.slideName(s.slide)}` })),
      ...this.made.map((a) => ({
        t: a.t,
        kind: "annotation",
        text: `${a.authorName || "Someone"} drew ${a.label ? `“${a.label}”` : `a ${a.kind}`} on ${this.slideName(a.slide)}`,
      })),
    ].sort((a, b) => a.t - b.t);
    this.events.replaceChildren(
      ...rows.map((row) => {
        const item = document.createElement("li");
        item.dataset.kind = row.kind;
        const button = document.createElement("button");
        button.type = "button";
        const time = document.createElement("time");
        time.dateTime = new Date(row.t).toISOString();
        time.textContent = clock(row.t);
        button.append(time, ` ${row.text}`);
        button.addEventListener("click", () => {
          this.pause();
          this.seek(row.t);
        });
        item.append(button);
        return item;
      }),
    );
  }

  slideName(id) {
    return this.slideNames.get(id) || "a slide";
  }

  // Shows the case as it was at ``t``: the presenter's view then, the annotations made by then.
  seek(t) {
    this.at = Math.max(this.start, Math.min(this.end, t));
    this.scrub.value = String(this.at - this.start);
    this.readout.textContent = clock(this.at);
    let sample = null;
    for (const s of this.path) {
      if (s.t > this.at) break;
      sample = s;
    }
    if (sample) this.slideView.goTo(sample, true);
    this.panel.until = new Date(this.at).toISOString();
    this.panel.refresh();
    this.overlay.paint();
    for (const item of this.events.children) {
      const t = Date.parse(item.querySelector("time").dateTime);
      item.classList.toggle("past", t <= this.at);
    }
    this.root.dataset.at = new Date(this.at).toISOString();
  }

  play() {
    if (this.at >= this.end) this.seek(this.start);
    this.playButton.textContent = "Pause";
    let last = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      let next = this.at + (now - last) * PLAY_SPEED;
      // A pause in the meeting (a break, another case) is skipped, not sat through.
      const coming = this.times.find((t) => t > this.at);
      if (coming !== undefined && coming - next > MAX_IDLE_MS) next = coming;
      this.seek(next);
      last = now;
      if (this.at >= this.end) this.pause();
    }, TICK_MS);
  }

  pause() {
    clearInterval(this.timer);
    this.timer = null;
    this.playButton.textContent = "Play";
  }
}
