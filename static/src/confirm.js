// A form or button marked data-confirm="..." asks before an act that cannot be undone
// (closing a meeting, ending a teaching session, answering an opinion).
document.addEventListener(
  "submit",
  (event) => {
    const form = event.target;
    const button = event.submitter;
    const question = (button && button.dataset.confirm) || (form && form.dataset && form.dataset.confirm);
    if (question && !window.confirm(question)) event.preventDefault();
  },
  true,
);
