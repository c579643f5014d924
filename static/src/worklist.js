// The worklist's filters (a form marked data-worklist-filters): choosing a priority, status,
// assignee or sort shows the list at once, from its first page. The form works without this.
for (const form of document.querySelectorAll("form[data-worklist-filters]")) {
  for (const select of form.querySelectorAll("select")) {
    select.addEventListener("change", () => form.requestSubmit());
  }
}
