// The admin dashboard's time-series charts (uPlot), from GET /api/v1/admin/history.
// The chosen window (data-hours) drives both the samples fetched and the x range; times
// are in the viewer's own locale and time zone (Intl), every axis is labelled with its unit.
"use strict";

(() => {
  const root = document.querySelector("[data-charts]");
  if (!root || !window.uPlot) return;

  const hours = Number(root.dataset.hours) || 6;
  const palette = ["#1f6feb", "#cf222e", "#1a7f37", "#9a6700"];
  const percent = (value) => (value == null ? null : value * 100);
  const round = (value) => Number(value.toFixed(2)).toLocaleString();
  // Each scale's axis label and how a value on it reads.
  const UNITS = {
    tasks: { label: "waiting tasks", format: (v) => `${round(v)}` },
    s: { label: "oldest wait (s)", format: (v) => `${round(v)} s` },
    perMinute: { label: "tasks done (/min)", format: (v) => `${round(v)} /min` },
    "%": { label: "share (%)", format: (v) => `${round(v)} %` },
  };
  const CHARTS = {
    queue: [
      { label: "waiting tasks", value: (s) => s.waiting_tasks, scale: "tasks" },
      { label: "oldest wait", value: (s) => s.oldest_wait_s, scale: "s" },
    ],
    throughput: [{ label: "tasks done", value: (s) => s.tasks_done_per_minute, scale: "perMinute" }],
    failures: [
      { label: "service failures", value: (s) => percent(s.failure_ratio), scale: "%" },
      { label: "input failures (users' files)", value: (s) => percent(s.input_failure_ratio), scale: "%" },
    ],
    resources: [
      { label: "CPU", value: (s) => s.cpu_percent, scale: "%" },
      { label: "memory used", value: (s) => s.memory_percent, scale: "%" },
      { label: "disk free", value: (s) => s.disk_free_percent, scale: "%" },
    ],
  };
  // undefined: the browser's locale (24-hour where that is the custom), in its time zone.
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const tickFormat = new Intl.DateTimeFormat(
    undefined,
    hours <= 24 ? { hour: "2-digit", minute: "2-digit" } : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" },
  );
  const pointFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const timeLabel = (seconds) => tickFormat.format(new Date(seconds * 1000));
  const plots = new Map();

  // The window ends now and reaches back the chosen hours, however few samples there are.
  function windowRange() {
    const end = Date.now() / 1000;
    return [end - hours * 3600, end];
  }

  function options(name, width, element) {
    const series = CHARTS[name];
    const scales = [...new Set(series.map((line) => line.scale))];
    return {
      width,
      height: 200,
      hooks: {
        // Read by the tests, handy when debugging: the x range drawn and the axes' labels.
        draw: [
          (u) => {
            element.dataset.xRange = [u.scales.x.min, u.scales.x.max].map(Math.round).join(" ");
            element.dataset.axes = JSON.stringify(u.axes.map((axis) => axis.label));
          },
        ],
      },
      series: [
        { value: (u, seconds) => (seconds == null ? "–" : pointFormat.format(new Date(seconds * 1000))) },
        ...series.map((line, index) => ({
          label: line.label,
          scale: line.scale,
          stroke: palette[index % palette.length],
          width: 2,
          spanGaps: true,
          value: (u, v) => (v == null ? "–" : UNITS[line.scale].format(v)),
        })),
      ],
      scales: {
        x: { time: true, range: () => windowRange() },
        ...Object.fromEntries(scales.map((scale) => [scale, scale === "%" ? { range: [0, 100] } : {}])),
      },
      axes: [
        {
          label: `time (${zone})`,
          values: (u, splits) => {
            const labels = splits.map(timeLabel);
            element.dataset.xTicks = JSON.stringify(labels); // read by the tests
            return labels;
          },
        },
        ...scales.map((scale, index) => ({
          scale,
          label: UNITS[scale].label,
          side: index === 0 ? 3 : 1,
          grid: { show: index === 0 },
          size: 60,
          values: (u, splits) => splits.map((v) => UNITS[scale].format(v)),
        })),
      ],
    };
  }

  function columns(name, samples) {
    const times = samples.map((sample) => Date.parse(sample.at) / 1000);
    return [times, ...CHARTS[name].map((line) => samples.map((sample) => line.value(sample) ?? null))];
  }

  function draw(samples) {
    for (const element of root.querySelectorAll("[data-chart]")) {
      const name = element.dataset.chart;
      const data = columns(name, samples);
      const existing = plots.get(name);
      if (existing) existing.setData(data);
      else plots.set(name, new uPlot(options(name, element.clientWidth || 320, element), data, element));
      element.dataset.points = String(samples.length); // read by the tests, handy when debugging
    }
  }

  async function refresh() {
    const response = await fetch(`/api/v1/admin/history?hours=${encodeURIComponent(hours)}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) return;
    const { samples } = await response.json();
    draw(samples);
  }

  window.addEventListener("resize", () => {
    for (const element of root.querySelectorAll("[data-chart]")) {
      plots.get(element.dataset.chart)?.setSize({ width: element.clientWidth, height: 200 });
    }
  });
  refresh();
  setInterval(refresh, 60000); // the monitor samples once a minute
})();
