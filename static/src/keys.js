// Keyboard shortcuts, and the help overlay that lists them ("?").
import { TOOLS } from "./draw.js";

export const SHORTCUTS = [
  ["?", "Show or hide this list"],
  ["Esc", "Stop drawing, close this list"],
  ...Object.values(TOOLS).map((tool) => [tool.key.toUpperCase(), tool.label]),
  ["Enter / double-click", "Finish a polygon"],
  ["Delete", "Delete the selected annotation"],
  ["Ctrl+Z / Ctrl+Shift+Z", "Undo / redo your own changes"],
  ["R / Shift+R", "Rotate 90° clockwise / anticlockwise"],
  ["1 … 6", "Magnification presets (lowest to highest)"],
  ["H", "Whole slide"],
  ["F", "Full screen"],
  ["K", "Laser pointer trail on or off"],
  ["[ / ]", "Previous / next slide"],
];

export function bindShortcuts({ slideView, tools, annotations, panel, pointers, help }) {
  const list = help.querySelector("dl");
  for (const [key, what] of SHORTCUTS) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = what;
    list.append(dt, dd);
  }
  const toggleHelp = (open = help.hidden) => (help.hidden = !open);
  help.querySelector("button").addEventListener("click", () => toggleHelp(false));
  document.querySelector("#help")?.addEventListener("click", () => toggleHelp());

  const byKey = Object.fromEntries(Object.entries(TOOLS).map(([name, tool]) => [tool.key, name]));
  const slides = () => [...document.querySelectorAll(".slide-strip a[data-slide-id]")].map((a) => a.dataset.slideId);

  // OpenSeadragon has its own keys on the canvas (r rotates, f flips): ours win.
  slideView.viewer.addHandler("canvas-key", (event) => {
    if ("rRfFhHkK".includes(event.originalEvent.key)) event.preventDefaultAction = true;
  });

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    // In a meeting room the case page is embedded: a presentation clicker's PageDown / PageUp
    // steps the agenda, whichever frame has the focus (the room decides who may step).
    if (document.body.classList.contains("embedded") && (event.key === "PageDown" || event.key === "PageUp")) {
      window.parent.postMessage({ collab: "step", key: event.key }, location.origin);
      event.preventDefault();
      return;
    }
    if (event.key === "Escape" && !help.hidden) {
      toggleHelp(false);
      return;
    }
    if (tools.key(event)) {
      event.preventDefault();
      return;
    }
    const key = event.key;
    const ctrl = event.ctrlKey || event.metaKey;
    let handled = true;
    if (ctrl && key.toLowerCase() === "z") {
      event.shiftKey ? annotations.redo() : annotations.undo();
    } else if (ctrl && key.toLowerCase() === "y") {
      annotations.redo();
    } else if (ctrl || event.altKey) {
      handled = false;
    } else if (key === "?") {
      toggleHelp();
    } else if (key === "Escape") {
      panel.select(null);
    } else if (key === "Delete" || key === "Backspace") {
      panel.deleteSelected();
    } else if (byKey[key.toLowerCase()]) {
      tools.use(byKey[key.toLowerCase()]);
    } else if (key === "r" || key === "R") {
      slideView.rotate(event.shiftKey ? -90 : 90);
    } else if (key === "f" || key === "F") {
      slideView.fullScreen();
    } else if (key === "h" || key === "H") {
      slideView.home();
    } else if (key === "k" || key === "K") {
      const on = pointers.toggleLaser();
      document.querySelector("#laser")?.setAttribute("aria-pressed", String(on));
    } else if (/^[1-9]$/.test(key)) {
      const preset = slideView.magnifications()[Number(key) - 1];
      if (preset) slideView.magnify(preset);
    } else if (key === "[" || key === "]") {
      const ids = slides();
      const at = ids.indexOf(slideView.slideId);
      const next = ids[at + (key === "]" ? 1 : -1)];
      if (next) slideView.show(next);
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });
}
