// A presenter's AI layers reach those who follow them: while presenting, the layers one shows
// (result id, layer index, opacity, colour map) and the results whose regions one outlines go
// into one's awareness state (fields ``layers`` and ``aiRegions``), through presence's throttled
// setter. A follower shows exactly those, and gets their own choices back on breaking away or
// when they stop following (the room sees one picture; nobody's own settings are lost).
//
// Whatever arrives comes from another browser, perhaps an attacker's: only whole numbers, an
// opacity within 0..1 and a known colour map pass, and image addresses are built from those.
import { isColourMap } from "./colourmaps.js";

const MAX_ENTRIES = 50; // a result has at most 10 layers; a slide, a handful of results

export function bindLayerSync({ presence, overlays }) {
  let published = false;
  const publish = () => {
    if (presence.isPresenting()) {
      const { layers, regions } = overlays.ownChoices();
      presence.out.set("layers", layers);
      presence.out.set("aiRegions", regions);
      published = true;
    } else if (published) {
      presence.out.set("layers", null);
      presence.out.set("aiRegions", null);
      published = false;
    }
  };
  const apply = () => {
    const id = presence.following;
    const state = id !== null && !presence.offView ? presence.state(id) : null;
    const layers = state ? validLayers(state.layers) : null;
    if (!state || layers === null) {
      overlays.follow(null);
      return;
    }
    overlays.follow({ name: String(state.user?.name ?? ""), layers, regions: validRegions(state.aiRegions) });
  };
  overlays.addEventListener("change", publish);
  presence.addEventListener("people", () => {
    // Started or stopped presenting since last time: say so (or stop saying it).
    if (presence.isPresenting() !== published) publish();
    apply();
  });
  presence.addEventListener("follow", apply);
}

const isId = (value) => Number.isSafeInteger(value) && value > 0;

// [{result, layer, opacity, colours}] with every field checked, or null if not a list at all.
export function validLayers(value) {
  if (!Array.isArray(value)) return null;
  const valid = [];
  for (const entry of value.slice(0, MAX_ENTRIES)) {
    if (!entry || typeof entry !== "object") continue;
    const { result, layer, opacity, colours } = entry;
    if (!isId(result) || !Number.isSafeInteger(layer) || layer < 0 || layer > 99) continue;
    if (typeof opacity !== "number" || !(opacity >= 0 && opacity <= 1)) continue;
    if (!isColourMap(colours)) continue;
    valid.push({ result, layer, opacity, colours });
  }
  return valid;
}

// Result ids whose regions are outlined.
export function validRegions(value) {
  return Array.isArray(value) ? value.slice(0, MAX_ENTRIES).filter(isId) : [];
}
