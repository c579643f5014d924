// Administration and account pages: a "Copy" button marked data-copy="<selector>" copies the value
// of the field it names (a one-time invitation link, a new API token) and says so; where the
// clipboard is not allowed (plain http, an older browser) it selects the field for Ctrl+C instead.
// A field marked data-select-on-focus selects its whole value when focused, for the same reason.

const COPIED_MS = 2000;

function fieldFor(button) {
  const field = document.querySelector(button.dataset.copy);
  return field instanceof HTMLInputElement || field instanceof HTMLTextAreaElement ? field : null;
}

function say(button, text) {
  if (!button.dataset.label) button.dataset.label = button.textContent;
  button.textContent = text;
  clearTimeout(Number(button.dataset.resetTimer || 0));
  button.dataset.resetTimer = String(setTimeout(() => (button.textContent = button.dataset.label), COPIED_MS));
}

async function copy(button) {
  const field = fieldFor(button);
  if (!field) return;
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard here");
    await navigator.clipboard.writeText(field.value);
    say(button, "Copied");
  } catch {
    field.focus();
    field.select();
    say(button, "Press Ctrl+C to copy");
  }
}

document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("button[data-copy]") : null;
  if (button) copy(button);
});

document.addEventListener("focusin", (event) => {
  const field = event.target;
  if (field instanceof HTMLInputElement && field.hasAttribute("data-select-on-focus")) field.select();
});
