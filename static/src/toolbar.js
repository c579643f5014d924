// The viewer's tools on one row whatever the screen: what does not fit goes, least used
// first, into a "More" menu at the row's end; and side panels that fold away, remembered.

// Items of the row move to the menu in descending data-overflow (default 5); items marked
// data-overflow="0" and the connection status always stay on the row.
export function fitToolbar(toolbar) {
  const more = document.createElement("div");
  more.className = "more";
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "More ▾";
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "toolbar-more");
  button.title = "Tools that do not fit on the row";
  const menu = document.createElement("div");
  menu.id = "toolbar-more";
  menu.className = "more-menu";
  menu.hidden = true;
  more.append(button, menu);
  const end = toolbar.querySelector(".connection");
  toolbar.insertBefore(more, end);

  const items = [...toolbar.children].filter((c) => c !== more && c !== end);
  const rank = (item) => Number(item.dataset.overflow ?? 5);
  const movable = items.filter((item) => rank(item) > 0).sort((a, b) => rank(b) - rank(a));
  const overflows = () => toolbar.scrollWidth > toolbar.clientWidth + 1;

  // The menu opening and closing is no reason to refit (and moving a button between the
  // press and the release of a click would swallow the click).
  const observer = new MutationObserver((records) => {
    if (records.some((r) => r.target !== menu && r.target !== more)) fit();
  });
  const watch = () => {
    observer.observe(toolbar, { subtree: true, childList: true, attributes: true, attributeFilter: ["hidden"] });
  };
  function fit() {
    if (!menu.children.length) {
      more.hidden = true;
      if (!overflows()) return;
    }
    observer.disconnect();
    const focused = document.activeElement;
    for (const item of items) toolbar.insertBefore(item, more);
    more.hidden = false;
    const moved = [];
    for (const item of movable) {
      if (!overflows()) break;
      if (item.hidden) continue;
      moved.push(item);
      menu.append(item);
    }
    // The menu keeps the row's order.
    for (const item of items) if (moved.includes(item)) menu.append(item);
    more.hidden = moved.length === 0;
    if (more.hidden) close();
    if (focused && focused !== document.activeElement && focused.isConnected) focused.focus();
    observer.takeRecords();
    watch();
  }

  function close(refocus = false) {
    if (menu.hidden) return;
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (refocus) button.focus();
  }
  button.addEventListener("click", () => {
    const open = menu.hidden;
    menu.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) menu.querySelector("button, input, select")?.focus();
  });
  more.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !menu.hidden) {
      event.stopPropagation();
      close(true);
    }
  });
  // A click on a tool in the menu does it and closes the menu; a click elsewhere closes it.
  menu.addEventListener("click", (event) => {
    if (event.target.closest("button")) close();
  });
  document.addEventListener("pointerdown", (event) => {
    if (!more.contains(event.target)) close();
  });
  // The row's width changes with the window; an item's with its content (the magnification
  // presets arrive with the slide's resolution, possibly while the page sits in a hidden frame,
  // where nothing has a size and no mutation is left to report it when it is shown).
  const sizes = new ResizeObserver(() => fit());
  sizes.observe(toolbar);
  for (const item of items) sizes.observe(item);
  fit();
  return { fit };
}

// A button that folds a side panel away; the choice is kept per page kind in this browser.
export function bindPanelToggle({ button, panel, container, key, folded = "side-folded" }) {
  const label = button.textContent;
  const set = (open) => {
    panel.hidden = !open;
    container.classList.toggle(folded, !open);
    button.setAttribute("aria-expanded", String(open));
    button.title = open ? `Hide ${label.toLowerCase()}` : `Show ${label.toLowerCase()}`;
    try {
      localStorage.setItem(key, open ? "open" : "folded");
    } catch {
      // Private windows may refuse storage: the panel still folds, it is just not remembered.
    }
  };
  let stored = null;
  try {
    stored = localStorage.getItem(key);
  } catch {
    stored = null;
  }
  set(stored !== "folded");
  button.addEventListener("click", () => set(panel.hidden));
}
