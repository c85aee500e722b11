"""Stripe: the payment gateway, wallet top-ups, crediting and reconciliation."""
