// The live session of a case: the slide viewer, everyone's presence and pointers,
// following, annotations and discussion, all on the case's shared Yjs document.
import { AnalysisRuns } from "./analysisjobs.js";
import { AnalysisOverlays } from "./analysisoverlays.js";
import { Annotations } from "./annotations.js";
import { Discussion } from "./discussion.js";
import { DrawingTools, TOOLS } from "./draw.js";
import { toolIcon } from "./icons.js";
import { joinMeeting } from "./inmeeting.js";
import { Compare } from "./compare.js";
import { bindShortcuts } from "./keys.js";
import { Overlay } from "./overlay.js";
import { AnnotationPanel, bindEditor } from "./panel.js";
import { bindPeople } from "./people.js";
import { Pointers } from "./pointers.js";
import { Presence } from "./presence.js";
import { bindRegions } from "./regions.js";
import { openSession } from "./session.js";
import { bindScaleBar } from "./scalebar.js";
import { addStripLabels, bindSlideInfo } from "./slideinfo.js";
import { SlideView } from "./slideview.js";
import { Snapshots } from "./snapshot.js";
import { Timeline } from "./timeline.js";
import { bindPanelToggle, fitToolbar } from "./toolbar.js";

const $ = (selector) => document.querySelector(selector);

function start(data) {
  const { doc, provider, awareness } = openSession(data.caseId, $("#connection"), "/ws/cases", {
    onAccessEnded: () => slideView.viewer.destroy(),
  });
  const slideView = new SlideView($("#viewer"), data.slides);
  const overlay = new Overlay(slideView.viewer);
  const presence = new Presence(awareness, data.user, slideView, data.rights);
  const pointers = new Pointers(overlay, presence, slideView);
  const annotations = new Annotations(doc, data.user, data.rights);
  const tools = new DrawingTools(overlay, slideView, annotations);
  const panel = new AnnotationPanel({
    overlay,
    slideView,
    annotations,
    tools,
    list: $("#annotation-list"),
    editor: $("#annotation-editor"),
  });
  bindEditor(panel);
  const discussion = new Discussion({ doc, me: data.user, rights: data.rights, list: $("#messages"), form: $("#message-form"), panel });
  bindPeople({ presence, list: $("#presence"), banner: $("#off-view"), presenting: $("#presenting"), requests: $("#present-requests") });
  bindToolbar({ slideView, tools, annotations, pointers, rights: data.rights });
  const compare = new Compare({
    slideView,
    presence,
    slides: data.slides,
    wrap: $(".viewer-wrap"),
    button: $("#compare-toggle"),
    strip: $(".slide-strip"),
  });
  bindSlideStrip(slideView, compare);
  if (data.rights.discuss) {
    const csrf = document.querySelector('meta[name="csrf"]');
    const snapshots = new Snapshots({
      slideView,
      overlay,
      tools,
      panel: $("#snapshot-panel"),
      endpoint: `/api/cases/${data.caseId}/snapshots`,
      headers: { "X-CSRF-Token": csrf ? csrf.content : "" },
      discussion,
      meeting: data.meeting,
    });
    $("#snapshot").hidden = false;
    $("#snapshot").addEventListener("click", () => snapshots.open());
  }
  bindSlideInfo({ slideView, section: $("#slide-info"), identified: data.rights.identified });
  addStripLabels($(".slide-strip"), data.rights.identified);
  bindShortcuts({ slideView, tools, annotations, panel, pointers, help: $("#shortcuts") });
  bindRegions({ annotations, panel, presence, bar: $("#regions") });
  if (data.meeting) joinMeeting(presence, data.meeting);
  const timeline = new Timeline({
    caseId: data.caseId,
    slides: data.slides,
    slideView,
    presence,
    panel,
    overlay,
    root: $("#timeline"),
    toggle: $("#timeline-toggle"),
  });
  const overlays = new AnalysisOverlays({ slideView, overlay, presence, panel, section: $("#overlays") });
  const analysisRuns = new AnalysisRuns({
    slideView,
    section: $("#analysis-runs"),
    rights: data.rights,
    onResult: () => overlays.reload(),
  });
  slideView.show(data.current);
  if (new URLSearchParams(location.search).has("timeline")) slideView.viewer.addOnceHandler("open", () => timeline.open());
  // For tests and integrations running in the page (e.g. a QuPath bridge).
  window.collab = { doc, provider, awareness, viewer: slideView.viewer, slideView, overlay, presence, annotations, tools, timeline, compare };
  window.collab.overlays = overlays; // overlays.reload() refreshes the AI analyses panel
  window.collab.analysisRuns = analysisRuns;
}

function bindToolbar({ slideView, tools, annotations, pointers, rights }) {
  const bar = $("#tools");
  for (const [name, tool] of Object.entries(TOOLS)) {
    if (name !== "select" && !rights.contribute) continue;
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.tool = name;
    button.append(toolIcon(name));
    button.setAttribute("aria-label", tool.label);
    button.title = `${tool.label} (${tool.key.toUpperCase()})`;
    button.addEventListener("click", () => tools.use(name));
    bar.append(button);
  }
  const sync = () => {
    for (const button of bar.querySelectorAll("[data-tool]")) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === tools.tool));
    }
  };
  tools.addEventListener("tool", sync);
  sync();
  $("#colour").addEventListener("change", (e) => (tools.color = e.target.value));
  $("#colour").hidden = !rights.contribute;
  $("#undo").addEventListener("click", () => annotations.undo());
  $("#redo").addEventListener("click", () => annotations.redo());
  const history = () => {
    $("#undo").disabled = !annotations.undoManager.canUndo();
    $("#redo").disabled = !annotations.undoManager.canRedo();
  };
  annotations.addEventListener("history", history);
  history();
  for (const id of ["#undo", "#redo"]) $(id).hidden = !rights.contribute;
  $("#rotate-left").addEventListener("click", () => slideView.rotate(-90));
  $("#rotate-right").addEventListener("click", () => slideView.rotate(90));
  $("#home").addEventListener("click", () => slideView.home());
  $("#fullscreen").addEventListener("click", () => slideView.fullScreen());
  $("#laser").addEventListener("click", (e) => e.currentTarget.setAttribute("aria-pressed", String(pointers.toggleLaser())));

  // Magnification presets from the scan's objective power (or its equivalent from the
  // resolution, marked ≈); hidden when the file gives neither.
  const presets = $("#magnifications");
  const approx = () => (slideView.powerIsEquivalent() ? "≈" : "");
  slideView.addEventListener("info", () => {
    presets.replaceChildren(
      ...slideView.magnifications().map((m) => {
        const b = document.createElement("button");
        b.type = "button";
        b.dataset.magnification = m;
        b.textContent = `${approx()}${m}×`;
        if (approx()) b.title = `Equivalent to ${m}× (the file gives its resolution, not its objective)`;
        b.addEventListener("click", () => slideView.magnify(m));
        return b;
      }),
    );
    presets.hidden = !presets.children.length;
  });

  bindScaleBar(slideView, $("#scale-bar"), $("#magnification"));
  fitToolbar($(".toolbar"));
  bindPanelToggle({
    button: $("#side-toggle"),
    panel: $(".session > .side"),
    container: $(".session"),
    key: `collab.panel.${document.body.classList.contains("embedded") ? "room-case" : "case"}`,
  });
}

function bindSlideStrip(slideView, compare) {
  const links = [...document.querySelectorAll(".slide-strip a[data-slide-id]")];
  for (const link of links) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      // Side by side, the strip picks the slides beside the main one.
      if (compare.cells.length) compare.toggle(link.dataset.slideId);
      else slideView.show(link.dataset.slideId);
    });
  }
  slideView.addEventListener("slide", () => {
    for (const link of links) {
      if (link.dataset.slideId === slideView.slideId) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
    const url = new URL(location.href);
    url.searchParams.set("slide", slideView.slideId);
    history.replaceState(null, "", url);
  });
}

const data = document.getElementById("session-data");
if (data) start(JSON.parse(data.textContent));
