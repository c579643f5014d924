// The scale bar and the magnification readout over a slide, redrawn as the view changes.
// The same on the case page, in the meeting room and in teaching, full screen or not.
import { scaleBar } from "./slideview.js";

export function bindScaleBar(slideView, bar, readout = null) {
  const approx = () => (slideView.powerIsEquivalent() ? "≈" : "");
  slideView.addEventListener("view", () => {
    const mpp = slideView.mpp();
    const image = slideView.image();
    if (!mpp || !image) {
      bar.hidden = true;
    } else {
      const screenPerImage = image.viewportToImageZoom(slideView.viewer.viewport.getZoom(true));
      const { pixels, label } = scaleBar(mpp / screenPerImage);
      bar.hidden = false;
      bar.querySelector(".bar").style.width = `${pixels}px`;
      bar.querySelector(".label").textContent = label;
    }
    if (!readout) return;
    const m = slideView.magnification();
    readout.textContent = m ? `${approx()}${m < 10 ? m.toFixed(1) : Math.round(m)}×` : "";
    readout.title = m && approx() ? "Equivalent magnification, from the slide's resolution" : "";
  });
}
