"""The workflow engine: durable tasks in the database, claimed with leases by workers.

It replaces Celery and audits as it controls: every state change of a workflow or task
writes a checkpoint event in the same transaction.
"""
