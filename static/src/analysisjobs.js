// Analyses of the slide on screen: run one on demand (contributors) and follow the progress of
// every run, whether asked for here, by the slide's registration or from the command line. The
// server only queues; a worker process runs the job and reports its progress twice a second.

const ACTIVE = new Set(["queued", "running"]);
const POLL_ACTIVE_MS = 1000;
const POLL_IDLE_MS = 10000;
// Friendly names of the built-in analyses; a plug-in shows its own name.
const TITLES = {
  "slide-qc": "Slide QC (focus, pen, folds, tissue)",
  "he-stain": "H&E: nuclear density and hotspots",
};

export function analysisTitle(name) {
  return TITLES[name] || name;
}

function stateText(job, workers) {
  if (job.state === "queued") return workers ? "Waiting for a worker…" : "Queued (no worker runs on this server)";
  if (job.state === "running") return `Running: ${Math.round(job.progress * 100)}%`;
  if (job.state === "done") return "Done: shown under AI analyses";
  if (job.state === "failed") return `Failed: ${job.error || "no reason given"}`;
  return "Cancelled";
}

export class AnalysisRuns {
  constructor({ slideView, section, rights, onResult }) {
    this.slideView = slideView;
    this.section = section;
    this.list = section.querySelector(".jobs");
    this.form = section.querySelector("form.run");
    this.error = section.querySelector(".form-error");
    this.contribute = Boolean(rights.contribute);
    this.onResult = onResult || (() => {});
    this.jobs = [];
    this.timer = null;
    this.known = new Map(); // job id -> last state seen, to tell when one has just finished
    const csrf = document.querySelector('meta[name="csrf"]');
    this.headers = { "Content-Type": "application/json", "X-CSRF-Token": csrf ? csrf.content : "" };
    this.catalogue = fetch("/api/analyses").then((r) => (r.ok ? r.json() : { analyses: [], workers: 0 }));
    this.catalogue.then((found) => this.offer(found));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run(this.form.elements.name.value);
    });
    slideView.addEventListener("slide", () => {
      this.jobs = [];
      this.known.clear();
      this.render();
      this.poll();
    });
  }

  offer(found) {
    this.workers = found.workers;
    const select = this.form.elements.name;
    select.replaceChildren(
      ...found.analyses.map((name) => {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = analysisTitle(name);
        return option;
      }),
    );
    this.form.hidden = !this.contribute || !found.analyses.length;
    this.render();
  }

  async run(name) {
    this.error.hidden = true;
    const button = this.form.querySelector("button");
    button.disabled = true;
    try {
      const answer = await fetch(`/api/slides/${this.slideView.slideId}/analyses/jobs`, {
        method: "POST",
        headers: this.headers,
        body: JSON.stringify({ name }),
      });
      if (!answer.ok) {
        const problem = await answer.json().catch(() => ({}));
        this.say(problem.detail || `The analysis could not be started (${answer.status}).`);
      }
    } catch {
      this.say("The server could not be reached: try again in a moment.");
    } finally {
      button.disabled = false;
    }
    this.poll();
  }

  async cancel(job) {
    const answer = await fetch(`/api/analysis-jobs/${job.id}/cancel`, { method: "POST", headers: this.headers });
    if (!answer.ok && answer.status !== 409) {
      const problem = await answer.json().catch(() => ({}));
      this.say(problem.detail || `The analysis could not be cancelled (${answer.status}).`);
    }
    this.poll();
  }

  say(text) {
    this.error.textContent = text;
    this.error.hidden = false;
  }

  async poll() {
    clearTimeout(this.timer);
    const slideId = this.slideView.slideId;
    if (slideId) {
      try {
        const answer = await fetch(`/api/slides/${slideId}/analyses/jobs`);
        if (answer.ok && slideId === this.slideView.slideId) this.update(await answer.json());
      } catch {
        // Offline for a moment: the next poll tries again.
      }
    }
    const active = this.jobs.some((job) => ACTIVE.has(job.state));
    this.timer = setTimeout(() => this.poll(), active ? POLL_ACTIVE_MS : POLL_IDLE_MS);
  }

  update(jobs) {
    let finished = false;
    for (const job of jobs) {
      const before = this.known.get(job.id);
      if (job.state === "done" && before !== undefined && before !== "done") finished = true;
      this.known.set(job.id, job.state);
    }
    this.jobs = jobs;
    this.render();
    if (finished) this.onResult();
  }

  render() {
    this.section.hidden = this.form.hidden && !this.jobs.length;
    this.list.replaceChildren(...this.jobs.map((job) => this.item(job)));
  }

  item(job) {
    const li = document.createElement("li");
    li.dataset.jobId = job.id;
    li.dataset.state = job.state;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = analysisTitle(job.name);
    const bar = document.createElement("progress");
    bar.max = 1;
    if (job.state !== "queued") bar.value = job.state === "done" ? 1 : job.progress;
    bar.setAttribute("aria-label", `${analysisTitle(job.name)}: progress`);
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = stateText(job, this.workers);
    li.append(name, bar, state);
    if (this.contribute && ACTIVE.has(job.state)) {
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.textContent = "Cancel";
      cancel.addEventListener("click", () => this.cancel(job));
      li.append(cancel);
    }
    return li;
  }
}
