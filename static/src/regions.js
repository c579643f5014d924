// Regions bookmarked for the MDT (annotations with `bookmark: true`), as buttons that fly the
// viewer there. Whoever follows the one who clicks follows the flight.
import { TOOLS } from "./draw.js";

export function bindRegions({ annotations, panel, presence, bar }) {
  const render = () => {
    const regions = annotations.all().filter((a) => a.bookmark === true);
    bar.hidden = !regions.length;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = "Regions:";
    const buttons = regions.map((region, index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.annotationId = region.id;
      button.textContent = `${index + 1} · ${region.label || TOOLS[region.kind]?.label || "region"}`;
      button.title = "Go to this region (everyone following you comes too)";
      button.style.setProperty("--colour", region.color || "#e6194b");
      button.addEventListener("click", () => goAsMe(presence, () => panel.jumpTo(region.id)));
      return button;
    });
    bar.replaceChildren(label, ...buttons);
  };
  annotations.addEventListener("change", render);
  render();
}

// Going somewhere oneself while following someone is breaking away, as when panning.
export function goAsMe(presence, go) {
  if (presence.following !== null) presence.breakAway();
  go();
}
