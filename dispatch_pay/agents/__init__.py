"""Agents as customers: budgeted agent tokens, and the MCP server that serves them."""
