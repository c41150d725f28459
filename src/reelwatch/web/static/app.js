// reelwatch pages: live updates (Server-Sent Events), uploads with progress, and the
// rendition switcher. Every page reads fine without this file; it only adds liveness.
"use strict";

(() => {
  const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

  // --- live updates --------------------------------------------------------------

  function followStream(url) {
    const source = new EventSource(url);
    source.addEventListener("video", (event) => applyVideo(JSON.parse(event.data)));
    source.addEventListener("section", (event) => applySection(JSON.parse(event.data)));
    source.addEventListener("gone", () => source.close());
    return source;
  }

  // The status and progress of one video, wherever the page shows it.
  function applyVideo(update) {
    const shown = document.querySelectorAll(`[data-video-id="${CSS.escape(update.id)}"]`);
    for (const element of shown) {
      if (element.hasAttribute("data-replace") && update.html
          && element.dataset.status !== update.status) {
        element.outerHTML = update.html; // a card: thumbnail, error and all
        continue;
      }
      element.dataset.status = update.status;
      for (const badge of element.querySelectorAll("[data-role=status]")) {
        badge.textContent = update.status;
        badge.className = `badge status-${update.status}`;
      }
      for (const bar of element.querySelectorAll("progress[data-role=progress]")) {
        bar.value = update.progress;
        bar.textContent = `${Math.round(update.progress * 100)} %`;
      }
    }
    const list = document.querySelector("[data-video-list]");
    if (list && update.html && shown.length === 0) {
      list.insertAdjacentHTML("afterbegin", update.html); // uploaded since the page loaded
      document.querySelector("[data-empty]")?.remove();
    }
  }

  // New HTML for one part of the page, unless the page shows it already.
  function applySection(update) {
    const element = document.getElementById(update.id);
    if (!element || element.dataset.key === update.key) return;
    element.innerHTML = update.html;
    element.dataset.key = update.key;
    enhance(element);
  }

  // --- renditions ------------------------------------------------------------------

  function enhance(root) {
    for (const button of root.querySelectorAll("[data-play]")) {
      button.hidden = false;
      button.addEventListener("click", () => {
        const player = root.querySelector("[data-player]") ?? document.querySelector("[data-player]");
        if (!player) return;
        player.src = button.dataset.play;
        player.play().catch(() => {}); // autoplay may be refused; the controls remain
      });
    }
  }

  // --- uploads ---------------------------------------------------------------------

  function setUpUploads(zone) {
    const input = zone.querySelector("[data-file-input]");
    const list = document.querySelector("[data-upload-list]");
    const limit = { bytes: Number(zone.dataset.maxBytes), mb: zone.dataset.maxMb };
    let queue = Promise.resolve(); // one upload at a time, in the order given

    const enqueue = (files) => {
      for (const file of files) {
        const row = uploadRow(file);
        list.prepend(row.element);
        queue = queue.then(() => upload(file, row, limit));
      }
    };
    input.addEventListener("change", () => { enqueue([...input.files]); input.value = ""; });
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      enqueue([...event.dataTransfer.files]);
    });
  }

  // Built with textContent only: a file name is never read as HTML.
  function uploadRow(file) {
    const element = make("li", "upload");
    const name = make("span", "name", file.name);
    const bar = make("progress");
    bar.max = 1;
    bar.value = 0;
    bar.dataset.role = "upload-progress";
    bar.setAttribute("aria-label", `Upload of ${file.name}`);
    const message = make("span", "message", `Waiting to upload (${megabytes(file.size)} MB)…`);
    element.append(name, bar, message);
    return { element, bar, message };
  }

  function upload(file, row, limit) {
    if (file.size > limit.bytes) {
      fail(row, `Too large: ${file.name} is ${megabytes(file.size)} MB, and this server accepts files up to ${limit.mb} MB.`);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("POST", "/api/v1/videos");
      request.setRequestHeader("X-CSRF-Token", csrfToken);
      request.responseType = "json";
      request.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        row.bar.value = event.loaded / event.total;
        row.message.textContent = `Uploading… ${Math.floor((100 * event.loaded) / event.total)} %`;
      });
      request.addEventListener("load", () => {
        if (request.status === 201) uploaded(row, request.response);
        else fail(row, describeFailure(request));
        resolve();
      });
      request.addEventListener("error", () => {
        fail(row, "The connection to the server was lost during the upload. Nothing was saved; please try again.");
        resolve();
      });
      const form = new FormData();
      form.append("file", file);
      request.send(form);
    });
  }

  function describeFailure(request) {
    const message = request.response?.error?.message ?? "";
    switch (request.status) {
      case 413:
        return `Too large: ${message || "the file is larger than this server accepts"}.`;
      case 503: {
        const retryAfter = request.getResponseHeader("Retry-After");
        const when = retryAfter ? ` Try again in ${/^\d+$/.test(retryAfter) ? `${retryAfter} s` : `after ${retryAfter}`}.` : "";
        return `Not accepting uploads right now (maintenance or overload): ${message || "the service is busy"}.${when}`;
      }
      case 401:
      case 403:
        return "Your session has ended or this page is stale: sign in again, then retry.";
      default:
        return `The upload failed (HTTP ${request.status})${message ? `: ${message}` : "."}`;
    }
  }

  function uploaded(row, video) {
    row.element.dataset.videoId = video.id;
    row.element.dataset.status = video.status;
    row.bar.remove();
    const badge = make("span", `badge status-${video.status}`, video.status);
    badge.dataset.role = "status";
    const processing = make("progress");
    processing.max = 1;
    processing.value = video.progress;
    processing.dataset.role = "progress";
    processing.setAttribute("aria-label", `Processing of ${video.title}`);
    const link = make("a", "", "Open");
    link.href = `/videos/${encodeURIComponent(video.id)}`;
    row.message.replaceChildren("Uploaded and saved. ", badge, " ", link);
    row.element.append(processing);
  }

  function fail(row, text) {
    row.element.classList.add("failed");
    row.bar.remove();
    row.message.textContent = text;
    row.message.setAttribute("role", "alert");
  }

  function make(tag, className = "", text = "") {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text) element.textContent = text;
    return element;
  }

  const megabytes = (bytes) => (bytes / 1048576).toFixed(1);

  // --- start -----------------------------------------------------------------------

  const streamUrl = document.body.dataset.stream;
  if (streamUrl && "EventSource" in window) followStream(streamUrl);
  const zone = document.querySelector("[data-upload]");
  if (zone) setUpUploads(zone);
  enhance(document);
})();
