"""Stripe webhooks: verify the signature, store the event once, apply its effects."""
