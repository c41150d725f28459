"""Notifications: the outbox, its dispatcher, e-mail (SMTP and the built-in sink), admin alerts."""
