// reelwatch pages: live updates (Server-Sent Events), uploads with progress, and the
// player (HLS with a rendition picker). Every page reads fine without this file; it only adds liveness.
"use strict";

(() => {
  const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
  const FINISHED = new Set(["ready", "failed"]);

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
      const statusChanged = element.dataset.status !== update.status;
      const failedNow = update.status === "failed" && statusChanged;
      element.dataset.status = update.status;
      for (const badge of element.querySelectorAll("[data-role=status]")) {
        badge.textContent = update.status;
        badge.className = `badge status-${update.status}`;
      }
      // A finished video shows the end state, whatever the last progress figure was.
      const progress = FINISHED.has(update.status) ? 1 : update.progress;
      for (const bar of element.querySelectorAll("progress[data-role=progress]")) {
        bar.value = progress;
        bar.textContent = `${Math.round(progress * 100)} %`;
        bar.classList.toggle("failed", update.status === "failed");
      }
      if ("step" in update || statusChanged) {
        for (const step of element.querySelectorAll("[data-role=step]")) step.textContent = stepText(update);
      }
      if (failedNow && element.hasAttribute("data-upload-row")) showFailureReason(element, update.id);
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
    if (playerInUse(element)) return; // never interrupt someone watching
    stopPlayers(element);
    element.innerHTML = update.html;
    element.dataset.key = update.key;
    enhance(element);
  }

  // --- the player ------------------------------------------------------------------

  const hlsPlayers = new Map(); // <video> -> its hls.js instance

  function enhance(root) {
    for (const player of root.querySelectorAll("video[data-player][data-hls]")) setUpHls(player);
    for (const button of root.querySelectorAll("[data-play]")) {
      button.hidden = false;
      button.addEventListener("click", () => {
        const player = root.querySelector("[data-player]") ?? document.querySelector("[data-player]");
        if (!player) return;
        hlsPlayers.get(player)?.destroy();
        hlsPlayers.delete(player);
        player.closest("section")?.querySelector("[data-quality-bar]")?.setAttribute("hidden", "");
        player.src = button.dataset.play;
        player.play().catch(() => {}); // autoplay may be refused; the controls remain
      });
    }
  }

  // The master playlist through hls.js (Media Source), with a picker of its levels;
  // the browser's own HLS where it has no Media Source; else the MP4 stays.
  function setUpHls(player) {
    const url = player.dataset.hls;
    const fallback = player.getAttribute("src");
    if (window.Hls?.isSupported()) {
      // No blob: worker (the CSP allows none); a variant still being made is an EVENT
      // playlist, played from its start rather than its live edge.
      const hls = new window.Hls({ enableWorker: false, startPosition: 0 });
      hlsPlayers.set(player, hls);
      player.removeAttribute("src");
      hls.on(window.Hls.Events.MANIFEST_PARSED, (_, data) => showLevels(player, hls, data.levels));
      hls.on(window.Hls.Events.LEVEL_SWITCHED, (_, data) => { player.dataset.level = data.level; });
      hls.on(window.Hls.Events.ERROR, (_, data) => {
        if (!data.fatal) return;
        hls.destroy(); // back to the MP4, where there is one
        hlsPlayers.delete(player);
        if (fallback) player.src = fallback;
      });
      hls.loadSource(url);
      hls.attachMedia(player);
    } else if (player.canPlayType("application/vnd.apple.mpegurl")) {
      player.src = url;
    }
  }

  function showLevels(player, hls, levels) {
    const bar = player.closest("section")?.querySelector("[data-quality-bar]");
    const select = bar?.querySelector("[data-quality]");
    if (!select || levels.length < 2) return;
    select.replaceChildren(new Option("Auto", "-1"));
    levels.forEach((level, index) => {
      select.append(new Option(`${Math.min(level.width, level.height)}p`, String(index)));
    });
    select.addEventListener("change", () => { hls.currentLevel = Number(select.value); });
    bar.hidden = false;
  }

  function playerInUse(root) {
    return [...root.querySelectorAll("video[data-player]")].some((v) => !v.paused || v.currentTime > 0);
  }

  function stopPlayers(root) {
    for (const player of root.querySelectorAll("video[data-player]")) {
      hlsPlayers.get(player)?.destroy();
      hlsPlayers.delete(player);
    }
  }

  // --- uploads ---------------------------------------------------------------------

  function setUpUploads(zone) {
    const input = zone.querySelector("[data-file-input]");
    const titleInput = zone.querySelector("[data-title-input]");
    const list = document.querySelector("[data-upload-list]");
    const limit = { bytes: Number(zone.dataset.maxBytes), mb: zone.dataset.maxMb };
    let queue = Promise.resolve(); // one upload at a time, in the order given

    const enqueue = (files) => {
      const title = titleInput?.value.trim() ?? ""; // for the files chosen with it
      if (titleInput) titleInput.value = "";
      for (const file of files) {
        const row = uploadRow(file);
        list.prepend(row.element);
        queue = queue.then(() => upload(file, title, row, limit));
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
    element.setAttribute("data-upload-row", "");
    const name = make("span", "name", file.name);
    const bar = make("progress");
    bar.max = 1;
    bar.value = 0;
    bar.dataset.role = "upload-progress";
    bar.setAttribute("aria-label", `Upload of ${file.name}`);
    const message = make("span", "message", `Waiting to upload (${sizeText(file.size)})…`);
    const cancel = make("button", "link", "Cancel");
    cancel.type = "button";
    cancel.dataset.role = "cancel";
    const row = { element, bar, message, cancel, cancelled: false, request: null };
    cancel.addEventListener("click", () => {
      row.cancelled = true;
      if (row.request) row.request.abort(); // the abort handler says so
      else stopped(row, "Cancelled before it started: nothing was sent.");
    });
    element.append(name, bar, message, cancel);
    return row;
  }

  function upload(file, title, row, limit) {
    if (row.cancelled) return Promise.resolve();
    if (file.size > limit.bytes) {
      fail(row, `Too large: ${file.name} is ${megabytes(file.size)} MB, and this server accepts files up to ${limit.mb} MB.`);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      row.request = request;
      const started = performance.now();
      request.open("POST", "/api/v1/videos");
      request.setRequestHeader("X-CSRF-Token", csrfToken);
      request.responseType = "json";
      request.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        row.bar.value = event.loaded / event.total;
        row.message.textContent = progressText(event.loaded, event.total, performance.now() - started);
      });
      request.upload.addEventListener("load", () => {
        row.bar.value = 1;
        row.message.textContent = "Sent; the server is storing it safely…";
      });
      request.addEventListener("load", () => {
        row.cancel.remove();
        if (request.status === 201) uploaded(row, request.response);
        else fail(row, describeFailure(request));
        resolve();
      });
      request.addEventListener("abort", () => {
        stopped(row, "Upload cancelled: the file was not saved.");
        resolve();
      });
      request.addEventListener("error", () => {
        fail(row, "The connection to the server was lost during the upload. Nothing was saved; please try again.");
        resolve();
      });
      const form = new FormData();
      if (title) form.append("title", title);
      form.append("file", file);
      request.send(form);
    });
  }

  // "Uploading… 40 % · 4.0 of 10.0 MB · 2.1 MB/s · 3 s left"
  function progressText(loaded, total, elapsedMs) {
    const percent = Math.floor((100 * loaded) / total);
    const parts = [`Uploading… ${percent} %`, `${sizeText(loaded)} of ${sizeText(total)}`];
    const speed = elapsedMs > 250 ? loaded / (elapsedMs / 1000) : 0; // bytes a second
    if (speed > 0) {
      parts.push(`${sizeText(speed)}/s`);
      parts.push(`${timeText((total - loaded) / speed)} left`);
    }
    return parts.join(" · ");
  }

  function sizeText(bytes) {
    if (bytes < 1024) return `${Math.round(bytes)} B`;
    if (bytes < 1048576) return `${(bytes / 1024).toFixed(1)} KB`;
    if (bytes < 1073741824) return `${(bytes / 1048576).toFixed(1)} MB`;
    return `${(bytes / 1073741824).toFixed(1)} GB`;
  }

  function timeText(seconds) {
    const whole = Math.max(0, Math.ceil(seconds));
    if (whole < 60) return `${whole} s`;
    const minutes = Math.floor(whole / 60);
    if (minutes < 60) return `${minutes} min ${whole % 60} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
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
    row.bar.remove();
    const badge = make("span", `badge status-${video.status}`, video.status);
    badge.dataset.role = "status";
    const step = make("span", "step", stepText(video));
    step.dataset.role = "step";
    const processing = make("progress");
    processing.max = 1;
    processing.value = video.progress;
    processing.dataset.role = "progress";
    processing.setAttribute("aria-label", `Processing of ${video.title}`);
    const link = make("a", "", "Open");
    link.href = `/videos/${encodeURIComponent(video.id)}`;
    row.message.replaceChildren("Uploaded and saved. ", badge, " ", step, " ", link);
    row.element.dataset.status = video.status;
    row.element.append(processing);
    refresh(video.id); // the live stream may have told its news before this row existed
  }

  // The video's JSON, applied to the page: catches up on anything the stream sent early.
  async function refresh(id) {
    const response = await fetch(`/api/v1/videos/${encodeURIComponent(id)}`, { credentials: "same-origin" });
    if (response.ok) applyVideo({ ...(await response.json()), html: null });
  }

  function stepText(update) {
    if (update.status === "ready") return "Ready to watch.";
    if (update.status === "failed") return "Processing failed.";
    if (update.status === "retrying") return "Will be tried again automatically.";
    if (update.step) return `Now: ${update.step}…`;
    return update.status === "queued" ? "Waiting for a worker…" : "Processing…";
  }

  // The reason a processed file failed, from the video's JSON (error.message).
  async function showFailureReason(element, id) {
    const response = await fetch(`/api/v1/videos/${encodeURIComponent(id)}`, { credentials: "same-origin" });
    const video = response.ok ? await response.json() : null;
    const reason = video?.error?.message ?? "the server did not say why";
    element.classList.add("failed");
    let line = element.querySelector("[data-role=reason]");
    if (!line) {
      line = make("p", "error-line");
      line.dataset.role = "reason";
      line.setAttribute("role", "alert");
      element.append(line);
    }
    line.textContent = `Failed: ${reason}. Open it for what to do next.`;
  }

  function stopped(row, text) {
    row.element.classList.add("cancelled");
    row.bar.remove();
    row.cancel.remove();
    row.message.textContent = text;
  }

  function fail(row, text) {
    row.element.classList.add("failed");
    row.bar.remove();
    row.cancel.remove();
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
