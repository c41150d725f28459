"""Watching the service: what it is doing now (overview, Prometheus metrics)."""
