// What the pathologist knows of the glass: the slide's size, resolution, objective and scanner,
// and its label and macro images, for those allowed to see patient identifiers (the server
// refuses the images to everyone else; this only avoids asking).
import { formatLength } from "./slideview.js";

// A panel section about the slide on screen.
export function bindSlideInfo({ slideView, section, identified }) {
  const details = section.querySelector("dl");
  const images = section.querySelector(".associated");
  const withheld = section.querySelector(".withheld");
  slideView.addEventListener("slide", () => {
    details.replaceChildren();
    images.replaceChildren();
    withheld.hidden = true;
  });
  slideView.addEventListener("info", () => {
    const info = slideView.info;
    if (!info) return;
    const rows = [["Size", `${info.width.toLocaleString("en-GB")} × ${info.height.toLocaleString("en-GB")} px`]];
    const mpp = slideView.mpp();
    if (mpp) {
      rows.push(["Resolution", `${mpp.toFixed(3)} µm/px`]);
      rows.push(["Field", `${formatLength(info.width * mpp)} × ${formatLength(info.height * mpp)}`]);
    }
    const power = slideView.objectivePower();
    if (power) rows.push(["Objective", slideView.powerIsEquivalent() ? `≈${power}× (from the resolution)` : `${power}×`]);
    if (info.vendor) rows.push(["Scanner", info.vendor]);
    rows.push(["Levels", String(info.levels.length)]);
    details.replaceChildren(
      ...rows.flatMap(([term, value]) => {
        const dt = document.createElement("dt");
        dt.textContent = term;
        const dd = document.createElement("dd");
        dd.textContent = value;
        return [dt, dd];
      }),
    );
    const shown = ["label", "macro"].filter((name) => (info.associated || []).includes(name));
    withheld.hidden = identified || !shown.length;
    if (!identified) return;
    images.replaceChildren(...shown.map((name) => figure(slideView.slideId, name)));
  });
}

function figure(slideId, name) {
  const url = `/slides/${slideId}/associated/${name}.jpeg`;
  const item = document.createElement("figure");
  item.className = `associated-${name}`;
  const link = document.createElement("a");
  link.href = url;
  link.target = "_blank";
  link.rel = "noopener";
  const image = document.createElement("img");
  image.src = url;
  image.alt = name === "label" ? "The slide's label" : "The whole glass slide (macro image)";
  link.append(image);
  const caption = document.createElement("figcaption");
  caption.textContent = name === "label" ? "Label" : "Macro";
  item.append(link, caption);
  return item;
}

// The slide picker: each slide's label beside its thumbnail, so the right block and stain are
// picked by what the glass says.
export async function addStripLabels(strip, identified) {
  if (!identified || !strip) return;
  const links = [...strip.querySelectorAll("a[data-slide-id]")];
  await Promise.all(
    links.map(async (link, index) => {
      const response = await fetch(`/api/slides/${link.dataset.slideId}`);
      const info = response.ok ? await response.json() : null;
      if (!info || !(info.associated || []).includes("label")) return;
      const image = document.createElement("img");
      image.className = "strip-label";
      image.src = `/slides/${link.dataset.slideId}/associated/label.jpeg`;
      image.alt = `Label of slide ${index + 1}`;
      link.querySelector("img").after(image);
    }),
  );
}
