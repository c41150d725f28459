"""Telling users upfront: maintenance windows, incidents, admission control, the status."""
