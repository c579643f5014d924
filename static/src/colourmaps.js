// The colour maps a heatmap layer can be drawn in: the server draws the layer image
// (collab/analysis/colours.py, ``?colours=NAME``); these same stops draw each legend, so the
// legend is the image's own scale. tests/test_analysis_colours.py checks the two lists agree.

export const DEFAULT_COLOURS = "viridis";

// name -> [label, stops as [r, g, b, alpha 0..255] at 0, 0.25, 0.5, 0.75 and 1]
export const COLOUR_MAPS = {
  viridis: [
    "Viridis (colour-blind safe)",
    [[68, 1, 84, 0], [59, 82, 139, 150], [33, 145, 140, 190], [94, 201, 98, 220], [253, 231, 37, 245]],
  ],
  magma: [
    "Magma (heat)",
    [[0, 0, 4, 0], [81, 18, 124, 150], [183, 55, 121, 190], [252, 137, 97, 220], [252, 253, 191, 245]],
  ],
  greys: [
    "Greys",
    [[240, 240, 240, 0], [190, 190, 190, 150], [130, 130, 130, 190], [70, 70, 70, 220], [0, 0, 0, 245]],
  ],
};

// Own keys only: a name that arrives from another browser could be "constructor".
export function isColourMap(name) {
  return typeof name === "string" && Object.hasOwn(COLOUR_MAPS, name);
}

// A CSS gradient, low on the left, of the map's stops.
export function gradient(name) {
  const stops = COLOUR_MAPS[name][1];
  const parts = stops.map(([r, g, b, a], i) => `rgba(${r}, ${g}, ${b}, ${(a / 255).toFixed(3)}) ${(i * 100) / (stops.length - 1)}%`);
  return `linear-gradient(to right, ${parts.join(", ")})`;
}
