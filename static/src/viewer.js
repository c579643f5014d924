// A plain slide viewer: one OpenSeadragon instance on the slide's Deep Zoom pyramid.
import OpenSeadragon from "openseadragon";

function start(element) {
  const viewer = OpenSeadragon({
    element,
    prefixUrl: "/static/build/osd-images/",
    tileSources: element.dataset.dzi,
    showNavigator: true,
    navigatorPosition: "BOTTOM_RIGHT",
    maxZoomPixelRatio: 2,
    visibilityRatio: 0.5,
    crossOriginPolicy: false,
  });
  // Lets tests and tools wait for the first drawn tile instead of sleeping.
  viewer.addOnceHandler("tile-drawn", () => {
    element.dataset.firstTile = "drawn";
  });
  return viewer;
}

for (const element of document.querySelectorAll("[data-dzi]")) {
  start(element);
}
