// One OpenSeadragon viewer that shows one slide of the case at a time, with the
// microscope's controls: scale bar, magnification presets, rotation, full screen.
import OpenSeadragon from "openseadragon";

const MAGNIFICATIONS = [1.25, 2.5, 5, 10, 20, 40, 80];

// At 40× a 0.25 µm pixel: the usual scanner relation between objective and resolution.
const EQUIVALENT_UM = 10;

export class SlideView extends EventTarget {
  constructor(element, slides, { navigator = true, bounded = true } = {}) {
    super();
    this.element = element;
    this.slides = slides;
    this.slideId = null;
    this.info = null; // GET /api/slides/{id}: mpp, objective power
    this.viewer = OpenSeadragon({
      element,
      prefixUrl: "/static/build/osd-images/",
      showNavigator: navigator,
      navigatorPosition: "BOTTOM_RIGHT",
      showRotationControl: false,
      showFullPageControl: false,
      showHomeControl: false,
      showZoomControl: false,
      maxZoomPixelRatio: 2,
      visibilityRatio: bounded ? 0.5 : 0,
      crossOriginPolicy: false,
      // The 2D canvas drawer: on machines without a GPU (virtual desktops are common in
      // hospitals) WebGL is emulated on the CPU and took 1.3 s to the first tile instead of
      // 0.5 s, and 1 s instead of 0.07 s to follow a pan (bench/follow.py).
      drawer: "canvas",
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
    });
    // Lets tests and tools wait for the first drawn tile instead of sleeping. The WebGL
    // drawer reports whole images drawn, the canvas drawer single tiles.
    const drawn = () => {
      if (element.dataset.firstTile !== "drawn") element.dataset.firstTile = "drawn";
    };
    if (this.viewer.drawer.getType() === "webgl") {
      this.viewer.addHandler("tiled-image-drawn", (event) => event.tiles.length && drawn());
    } else {
      this.viewer.addHandler("tile-drawn", drawn);
    }
    this.viewer.addHandler("open", () => {
      this.dispatchEvent(new Event("slide"));
      this.changed();
    });
    this.viewer.addHandler("update-viewport", () => this.changed());
  }

  async show(slideId) {
    if (slideId === this.slideId) return;
    const slide = this.slides.find((s) => s.id === slideId) || this.slides[0];
    this.slideId = slide.id;
    this.element.dataset.slideId = slide.id;
    this.info = null;
    const opened = new Promise((resolve) => this.viewer.addOnceHandler("open", resolve));
    // Teaching sessions serve slides under aliases, at addresses of their own.
    this.viewer.open(slide.dzi || `/slides/${slide.id}.dzi`);
    const [info] = await Promise.all([
      fetch(slide.info || `/api/slides/${slide.id}`).then((r) => (r.ok ? r.json() : null)),
      opened,
    ]);
    if (this.slideId === slide.id) {
      this.info = info;
      this.dispatchEvent(new Event("info"));
      this.changed();
    }
  }

  image() {
    return this.viewer.world.getItemAt(0);
  }

  // Where this viewer looks, in level-0 image pixels: centre, visible width, rotation.
  view() {
    const image = this.image();
    if (!image) return null;
    const viewport = this.viewer.viewport;
    const centre = image.viewportToImageCoordinates(viewport.getCenter(true));
    const width = image.getContentSize().x / viewport.getZoom(true);
    return { slide: this.slideId, x: centre.x, y: centre.y, width, rotation: viewport.getRotation(true) };
  }

  // Go where someone else looks: same slide, centre, field width and rotation.
  async goTo(view, immediately = false) {
    if (!view) return;
    if (view.slide !== this.slideId) await this.show(view.slide);
    const image = this.image();
    if (!image || view.slide !== this.slideId) return;
    const viewport = this.viewer.viewport;
    viewport.setRotation(view.rotation || 0, immediately);
    viewport.zoomTo(image.getContentSize().x / view.width, null, immediately);
    viewport.panTo(image.imageToViewportCoordinates(view.x, view.y), immediately);
  }

  rotate(degrees) {
    const viewport = this.viewer.viewport;
    viewport.setRotation((viewport.getRotation() + degrees + 360) % 360);
  }

  home() {
    this.viewer.viewport.goHome();
  }

  // Full screen takes the whole stage (tools, region buttons, scale bar), not the bare
  // canvas that OpenSeadragon's own full screen shows.
  fullScreen() {
    const stage = this.element.closest(".stage") || this.element;
    if (document.fullscreenElement) document.exitFullscreen();
    else stage.requestFullscreen?.();
  }

  // The scan's objective power; when the file does not say but gives its resolution, the
  // equivalent one (10 µm / mpp: 0.25 µm/px ≈ 40×, 0.5 ≈ 20×), so that presets and the
  // readout still work. ``powerIsEquivalent`` tells the two apart for the labels.
  objectivePower() {
    if (this.info && this.info.objective_power) return Number(this.info.objective_power);
    const mpp = this.mpp();
    return mpp ? Math.round((EQUIVALENT_UM / mpp) * 10) / 10 : null;
  }

  powerIsEquivalent() {
    return !(this.info && this.info.objective_power) && this.mpp() !== null;
  }

  // Presets up to the scan's own objective (and one step of digital zoom beyond it).
  magnifications() {
    const power = this.objectivePower();
    return power ? MAGNIFICATIONS.filter((m) => m <= power * 2) : [];
  }

  // At magnification M one image pixel covers M / objective power screen pixels.
  magnify(magnification) {
    const image = this.image();
    const power = this.objectivePower();
    if (!image || !power) return;
    this.viewer.viewport.zoomTo(image.imageToViewportZoom(magnification / power));
  }

  magnification() {
    const image = this.image();
    const power = this.objectivePower();
    if (!image || !power) return null;
    return image.viewportToImageZoom(this.viewer.viewport.getZoom(true)) * power;
  }

  // Micrometres per level-0 pixel, or null when the file does not say.
  mpp() {
    return this.info && this.info.mpp_x ? Number(this.info.mpp_x) : null;
  }

  changed() {
    this.dispatchEvent(new Event("view"));
  }
}

// A scale bar of a round length (1, 2 or 5 times a power of ten) close to 120 px.
export function scaleBar(micronsPerScreenPixel, targetPixels = 120) {
  const target = micronsPerScreenPixel * targetPixels;
  const power = 10 ** Math.floor(Math.log10(target));
  const length = [5, 2, 1].map((f) => f * power).find((l) => l <= target) || power;
  const label = length >= 1000 ? `${length / 1000} mm` : `${length} µm`;
  return { pixels: length / micronsPerScreenPixel, label };
}

export function formatLength(microns) {
  if (microns >= 1000) return `${(microns / 1000).toFixed(2)} mm`;
  return `${microns.toFixed(microns < 10 ? 1 : 0)} µm`;
}

export function formatArea(squareMicrons) {
  const mm2 = squareMicrons / 1e6;
  return mm2 >= 0.01 ? `${mm2.toFixed(2)} mm²` : `${Math.round(squareMicrons)} µm²`;
}
