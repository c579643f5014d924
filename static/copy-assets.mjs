// Copies OpenSeadragon's button images next to the bundle, so nothing loads from a CDN.
import { cpSync } from "node:fs";

cpSync("node_modules/openseadragon/build/openseadragon/images", "collab/static/build/osd-images", {
  recursive: true,
});
