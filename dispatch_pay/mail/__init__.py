"""Outgoing mail: an outbox written in the caller's transaction, delivered by `send-mail`."""
