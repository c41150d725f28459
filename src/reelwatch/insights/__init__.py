"""What the service is doing, read from the database: the read models that the pages, the
API, the notices and the monitor share (load, capacity, activity, history, uptime, the
overview, Prometheus metrics) and the records they read (checks' states, alert rules and
their states, silences). Nothing here runs on a schedule: the monitor's duties
(``reelwatch.monitor``) write what these read."""
