// The "AI analyses" side-panel section: each result of the slide's analyses (decision support)
// with its provenance, flags and scores; each heatmap layer with a toggle, an opacity, a colour
// map and a legend; each result's regions, to outline on the slide and fly to.
//
// Everything a result says may come from an outside tool: it is put on the page as text only.
import { COLOUR_MAPS, DEFAULT_COLOURS, gradient, isColourMap } from "./colourmaps.js";
import { HeatLayers } from "./heatlayers.js";
import { bindLayerSync } from "./layersync.js";
import { goAsMe } from "./regions.js";

const DEFAULT_OPACITY = 0.7;

export class AnalysisOverlays extends EventTarget {
  constructor({ slideView, overlay, presence, panel, section }) {
    super();
    this.slideView = slideView;
    this.presence = presence;
    this.panel = panel;
    this.section = section;
    this.body = section.querySelector(".results");
    this.note = section.querySelector(".following-note");
    this.heat = new HeatLayers(overlay);
    this.results = [];
    this.slideId = null;
    // One's own choices, kept across slides (result ids are unique) and while following.
    this.settings = new Map(); // "result:layer" -> {on, opacity, colours}
    this.outlined = new Set(); // result ids whose regions are outlined
    this.remote = null; // {name, layers, regions} of the presenter followed, validated
    slideView.addEventListener("slide", () => this.reload());
    bindLayerSync({ presence, overlays: this });
  }

  // Fetches the current slide's results again (e.g. when an analysis job finishes).
  async reload() {
    const slideId = this.slideView.slideId;
    if (!slideId) return;
    if (slideId !== this.slideId) {
      this.slideId = slideId;
      this.results = [];
      this.render();
    }
    let results = [];
    try {
      const answer = await fetch(`/api/slides/${encodeURIComponent(slideId)}/analyses`);
      results = answer.ok ? await answer.json() : [];
    } catch {
      results = []; // offline for a moment: the panel stays hidden, the slide still works
    }
    if (this.slideView.slideId !== slideId) return; // the slide changed meanwhile
    this.results = Array.isArray(results) ? results : [];
    this.render();
    // One's choices on this slide, remembered from before, are now what a presenter shows.
    this.dispatchEvent(new Event("change"));
  }

  setting(resultId, index) {
    return this.settings.get(`${resultId}:${index}`) || { on: false, opacity: DEFAULT_OPACITY, colours: DEFAULT_COLOURS };
  }

  change(resultId, index, fields) {
    this.settings.set(`${resultId}:${index}`, { ...this.setting(resultId, index), ...fields });
    this.changed();
  }

  outline(resultId, on) {
    if (on) this.outlined.add(resultId);
    else this.outlined.delete(resultId);
    this.changed();
  }

  changed() {
    this.update();
    this.dispatchEvent(new Event("change"));
  }

  // What one shows on this slide, as presenter sync sends it.
  ownChoices() {
    const layers = [];
    for (const result of this.results) {
      result.layers.forEach((_, index) => {
        const { on, opacity, colours } = this.setting(result.id, index);
        if (on) layers.push({ result: result.id, layer: index, opacity, colours });
      });
    }
    const regions = this.results.filter((r) => this.outlined.has(r.id)).map((r) => r.id);
    return { layers, regions };
  }

  // ``remote``: the followed presenter's layers (validated, static/src/layersync.js), or null.
  follow(remote) {
    if (JSON.stringify(remote) === JSON.stringify(this.remote)) return;
    this.remote = remote;
    this.update();
  }

  // What is shown now: the presenter's choices while following one, else one's own.
  effective() {
    if (!this.remote) return this.ownChoices();
    const known = (r, i) => this.results.some((result) => result.id === r && i < result.layers.length);
    return {
      layers: this.remote.layers.filter((l) => known(l.result, l.layer)),
      regions: this.remote.regions.filter((id) => this.results.some((r) => r.id === id)),
    };
  }

  render() {
    this.section.hidden = !this.results.length;
    this.body.replaceChildren(...this.results.map((result) => this.renderResult(result)));
    this.update();
  }

  renderResult(result) {
    const article = element("article", "ai-result");
    article.dataset.resultId = result.id;
    const heading = element("h3", "", `${result.name} ${result.version}`);
    const outside = result.source !== "collab";
    const from = outside ? `from ${result.source} (outside tool)` : "run here by collab";
    const provenance = element("p", "provenance muted", from);
    if (typeof result.made === "string") {
      const made = element("time", "", result.made.slice(0, 10));
      made.dateTime = result.made;
      provenance.append(" · ", made);
    }
    article.append(heading, provenance, element("p", "ai-notice", result.notice || ""));
    if (result.flags.length) {
      const flags = element("ul", "flags");
      flags.setAttribute("aria-label", "Flags");
      for (const flag of result.flags) {
        const item = element("li", "flag");
        item.append(element("strong", "", String(flag.name)), document.createTextNode(`: ${flag.reason}`));
        flags.append(item);
      }
      article.append(flags);
    }
    const scores = Object.entries(result.scores || {});
    if (scores.length) {
      const list = element("dl", "scores");
      for (const [name, value] of scores) list.append(element("dt", "", name.replaceAll("_", " ")), element("dd", "", formatNumber(value)));
      article.append(list);
    }
    if (result.layers.length) {
      const layers = element("ul", "layers");
      result.layers.forEach((layer, index) => layers.append(this.renderLayer(result, layer, index)));
      article.append(layers);
    }
    if (result.regions.length) article.append(this.renderRegions(result));
    return article;
  }

  renderLayer(result, layer, index) {
    const item = element("li", "ai-layer");
    item.dataset.layerIndex = index;
    const name = String(layer.name);
    const toggle = element("label", "toggle");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "show";
    box.setAttribute("aria-label", `Show the layer ${name} over the slide`);
    box.addEventListener("change", () => this.change(result.id, index, { on: box.checked }));
    toggle.append(box, element("span", "", name));

    const controls = element("div", "controls");
    const opacityLabel = element("label", "opacity", "Opacity ");
    const slider = document.createElement("input");
    slider.type = "range";
    slider.name = "opacity";
    slider.min = "0";
    slider.max = "100";
    slider.step = "5";
    slider.setAttribute("aria-label", `Opacity of ${name}`);
    const shown = element("output", "", "");
    slider.addEventListener("input", () => this.change(result.id, index, { opacity: Number(slider.value) / 100 }));
    opacityLabel.append(slider, shown);
    const select = document.createElement("select");
    select.name = "colours";
    select.setAttribute("aria-label", `Colour map of ${name}`);
    for (const [value, [label]] of Object.entries(COLOUR_MAPS)) select.append(new Option(label, value));
    select.addEventListener("change", () => {
      if (isColourMap(select.value)) this.change(result.id, index, { colours: select.value });
    });
    controls.append(opacityLabel, select);

    const legend = element("div", "legend");
    const ramp = element("span", "ramp");
    ramp.setAttribute("role", "img");
    const ends = element("span", "ends");
    ends.append(element("span", "", "0 · low"), element("span", "", "1 · high"));
    legend.append(element("span", "legend-text", String(layer.legend)), ramp, ends);
    item.append(toggle, controls, legend);
    return item;
  }

  renderRegions(result) {
    const box = element("div", "ai-region-list");
    const toggle = element("label", "toggle");
    const check = document.createElement("input");
    check.type = "checkbox";
    check.name = "outline";
    check.addEventListener("change", () => this.outline(result.id, check.checked));
    const count = result.regions.length;
    toggle.append(check, element("span", "", `Outline ${count} region${count === 1 ? "" : "s"} on the slide`));
    const list = element("ul", "regions-list");
    result.regions.forEach((region, index) => {
      const button = element("button", "ai-region-go");
      button.type = "button";
      button.dataset.regionIndex = index;
      button.title = "Go to this region (everyone following you comes too)";
      const score = Number.isFinite(region.score) ? ` · score ${formatNumber(region.score)}` : "";
      button.append(element("span", "badge", "AI"), element("span", "title", String(region.label)), element("span", "meta", score));
      button.addEventListener("click", () => this.flyTo(result, region));
      const item = element("li");
      item.append(button);
      list.append(item);
    });
    box.append(toggle, list);
    return box;
  }

  // Flies there like an annotation, and outlines the result's regions so one sees what it is.
  flyTo(result, region) {
    goAsMe(this.presence, () => this.panel.flyTo(this.slideId, region.polygon_level0));
    if (!this.remote && !this.outlined.has(result.id)) this.outline(result.id, true);
  }

  // Controls and the drawing, from what is shown now (one's own or the presenter's).
  update() {
    const { layers, regions } = this.effective();
    const following = Boolean(this.remote);
    this.note.hidden = !following;
    if (following) this.note.textContent = `Showing the layers ${this.remote.name} presents; yours come back when you stop following.`;
    for (const article of this.body.querySelectorAll("article.ai-result")) {
      const resultId = Number(article.dataset.resultId);
      for (const item of article.querySelectorAll("li.ai-layer")) {
        const index = Number(item.dataset.layerIndex);
        const own = this.setting(resultId, index);
        const remote = layers.find((l) => l.result === resultId && l.layer === index);
        const state = following ? { on: Boolean(remote), ...(remote || own) } : own;
        const box = item.querySelector("input[name=show]");
        const slider = item.querySelector("input[name=opacity]");
        const select = item.querySelector("select[name=colours]");
        box.checked = state.on;
        slider.value = String(Math.round(state.opacity * 100));
        item.querySelector("output").textContent = `${slider.value}%`;
        select.value = state.colours;
        for (const control of [box, slider, select]) control.disabled = following;
        item.dataset.shown = String(state.on);
        const ramp = item.querySelector(".ramp");
        ramp.style.setProperty("--ramp", gradient(state.colours));
        ramp.setAttribute("aria-label", `Colour scale: ${COLOUR_MAPS[state.colours][0]}, from 0 (low, transparent) to 1 (high)`);
      }
      const outline = article.querySelector("input[name=outline]");
      if (outline) {
        outline.checked = following ? regions.includes(resultId) : this.outlined.has(resultId);
        outline.disabled = following;
      }
    }
    this.draw(layers, regions);
  }

  draw(layers, regionResults) {
    const slide = encodeURIComponent(this.slideId || "");
    const drawn = layers.map(({ result, layer, opacity, colours }) => {
      const found = this.results.find((r) => r.id === result).layers[layer];
      // Built from checked whole numbers and a name from the fixed list, never from what arrived.
      const query = colours === DEFAULT_COLOURS ? "" : `?colours=${colours}`;
      return {
        key: `${result}:${layer}`,
        src: `/slides/${slide}/analyses/${result}/layers/${layer}.png${query}`,
        label: String(found.name),
        opacity,
        colours,
        cell: Number(found.level0_cell_px),
        rows: Number(found.rows),
        cols: Number(found.cols),
      };
    });
    const regions = this.results
      .filter((r) => regionResults.includes(r.id))
      .flatMap((r) => r.regions.map((region) => ({ label: String(region.label), polygon: region.polygon_level0 })));
    this.heat.show(drawn, regions);
  }
}

function element(tag, className = "", text = null) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== null) made.textContent = text;
  return made;
}

function formatNumber(value) {
  return Number(value).toLocaleString("en-GB", { maximumSignificantDigits: 3 });
}
