// The admin dashboard's time-series charts (uPlot), from GET /api/v1/admin/history.
"use strict";

(() => {
  const root = document.querySelector("[data-charts]");
  if (!root || !window.uPlot) return;

  const palette = ["#1f6feb", "#cf222e", "#1a7f37", "#9a6700"];
  const percent = (value) => (value == null ? null : value * 100);
  const CHARTS = {
    queue: [
      { label: "waiting tasks", value: (s) => s.waiting_tasks },
      { label: "oldest wait (s)", value: (s) => s.oldest_wait_s, scale: "s" },
    ],
    throughput: [{ label: "tasks / min", value: (s) => s.tasks_done_per_minute }],
    failures: [{ label: "failed (%)", value: (s) => percent(s.failure_ratio), scale: "%" }],
    resources: [
      { label: "CPU %", value: (s) => s.cpu_percent, scale: "%" },
      { label: "memory %", value: (s) => s.memory_percent, scale: "%" },
      { label: "disk free %", value: (s) => s.disk_free_percent, scale: "%" },
    ],
  };
  const plots = new Map();

  function options(name, width) {
    const series = CHARTS[name];
    const scales = [...new Set(series.map((line) => line.scale ?? "y"))];
    return {
      width,
      height: 200,
      tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"), // as the pages: UTC
      series: [
        {},
        ...series.map((line, index) => ({
          label: line.label,
          scale: line.scale ?? "y",
          stroke: palette[index % palette.length],
          width: 2,
          spanGaps: true,
        })),
      ],
      scales: Object.fromEntries(scales.map((scale) => [scale, scale === "%" ? { range: [0, 100] } : {}])),
      axes: [{}, ...scales.map((scale, index) => ({ scale, side: index === 0 ? 3 : 1, grid: { show: index === 0 } }))],
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
      else plots.set(name, new uPlot(options(name, element.clientWidth || 320), data, element));
      element.dataset.points = String(samples.length); // read by the tests, handy when debugging
    }
  }

  async function refresh() {
    const response = await fetch(`/api/v1/admin/history?hours=${encodeURIComponent(root.dataset.hours)}`, {
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
