"""Operator tools for one host's data: garbage collection, backup and restore, doctor."""
