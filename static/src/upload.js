// The slide upload page: a resumable tus upload (tus-js-client) with a progress bar. If the
// connection drops or the page is reloaded, choosing the same file again carries on from the
// server's offset: tus-js-client remembers each upload's address in localStorage.
import * as tus from "tus-js-client";

// Each PATCH must reach the server within its per-request deadline (collab/httpguard.py, 10 s):
// 8 MiB takes under 7 s even at 10 Mbit/s.
const CHUNK_BYTES = 8 * 1024 * 1024;
const RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000];

function gigabytes(bytes) {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.ceil(bytes / 1e3)} kB`;
}

async function refusalOf(err) {
  // The server explains a refusal in a problem+json body; anything else is a lost connection.
  const response = err && err.originalResponse;
  if (response) {
    try {
      const body = JSON.parse(response.getBody());
      if (body && body.detail) return body.detail;
    } catch (_) {
      // not JSON: fall through
    }
  }
  return "The connection to the server was lost. Choose the same file again to carry on where it stopped.";
}

function start(form) {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf"]')?.content || "";
  const status = $("upload-status");
  const progress = $("upload-progress");
  const text = $("upload-text");
  const problem = $("upload-error");
  const done = $("upload-done");
  const cancel = $("upload-cancel");
  let current = null;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) return;
    const caseId = $("upload-case").value;
    status.hidden = false;
    problem.hidden = true;
    done.hidden = true;
    $("upload-name").textContent = file.name;
    progress.value = 0;
    text.textContent = "Starting…";
    $("upload-start").disabled = true;

    const upload = new tus.Upload(file, {
      endpoint: form.dataset.endpoint,
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS_MS,
      headers: { "X-CSRF-Token": csrf },
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream", case_id: caseId },
      // The case is part of what makes an upload "the same": the same file for another case starts afresh.
      fingerprint: async (f) => ["collab", f.name, f.size, f.lastModified, caseId].join("-"),
      removeFingerprintOnSuccess: true,
      onUploadUrlAvailable: () => {
        status.dataset.uploadUrl = upload.url;
      },
      onProgress: (sent, total) => {
        const percent = total ? Math.floor((sent / total) * 100) : 0;
        progress.value = percent;
        text.textContent = `${gigabytes(sent)} of ${gigabytes(total)} sent (${percent}%)`;
      },
      onError: async (err) => {
        problem.textContent = await refusalOf(err);
        problem.hidden = false;
        cancel.hidden = true;
        $("upload-start").disabled = false;
      },
      onSuccess: (payload) => {
        const slideId = payload && payload.lastResponse ? payload.lastResponse.getHeader("Collab-Slide-Id") : null;
        progress.value = 100;
        text.textContent = `${gigabytes(file.size)} received and checked.`;
        const open = $("upload-open");
        if (caseId && slideId) {
          open.href = `/cases/${encodeURIComponent(caseId)}?slide=${encodeURIComponent(slideId)}`;
          open.textContent = "Open the slide";
        } else {
          open.href = "/slides/unassigned";
          open.textContent = "Attach it to a case (unassigned slides)";
        }
        done.hidden = false;
        cancel.hidden = true;
        $("upload-start").disabled = false;
      },
    });
    current = upload;
    const previous = await upload.findPreviousUploads();
    if (previous.length) {
      previous.sort((a, b) => String(b.creationTime).localeCompare(String(a.creationTime)));
      upload.resumeFromPreviousUpload(previous[0]);
      text.textContent = "Carrying on with the earlier upload of this file…";
      status.dataset.resumed = "true";
    }
    cancel.hidden = false;
    upload.start();
  });

  cancel.addEventListener("click", async () => {
    if (!current) return;
    await current.abort(true); // true: the server forgets the partial file too
    text.textContent = "Upload cancelled.";
    cancel.hidden = true;
    $("upload-start").disabled = false;
  });
}

const form = document.querySelector("form[data-upload]");
if (form) start(form);
