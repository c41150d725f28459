"""reelwatch's benchmarks, run on demand (never part of the test suite).

One script per benchmark, each runnable as ``python -m bench.<name>`` or
``python bench/<name>.py`` with ``--help`` and a scaled-down ``--quick``:

- ``engine_throughput``: no-op tasks drained, against Celery + Redis and pgqueuer
- ``pickup_latency``: enqueue to start on an idle worker
- ``pipeline_efficiency``: videos through reelwatch against the same ffmpeg commands run bare
- ``upload``: a large file streamed through the API, throughput and the server's memory
- ``api_load``: status reads by 100 concurrent clients while workers transcode
- ``crash_recovery``: SIGKILL a worker mid-task, time until the task runs again
- ``scale``: status and list queries on millions of rows

``python -m bench.run_all --quick`` runs them all. The method and the figures are in
``docs/performance.md``.
"""
