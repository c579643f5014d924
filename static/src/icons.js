// Small line drawings for the annotation tools, so that all of them fit on one row; each
// button still has its name (aria-label) and a tooltip with its key.
const PATHS = {
  select: "M4 2v11l3-3 2 4.5 2-1-2-4.5h4z",
  point: "M8 5a3 3 0 1 0 0.01 0z",
  line: "M2 13 14 3M2 10.5l2.5 3M11.5 2.5l2.5 3",
  rect: "M2 4h12v8H2z",
  ellipse: "M2 8a6 4 0 1 0 12 0a6 4 0 1 0-12 0z",
  polygon: "M8 2l6 4.5-2.3 7.5H4.3L2 6.5z",
  freehand: "M2 11c2-6 4 3 6-2s3-4 6 1",
  text: "M3 3h10M8 3v11M6 14h4",
};

export function toolIcon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", PATHS[name] || PATHS.point);
  svg.append(path);
  return svg;
}
