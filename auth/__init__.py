"""Accounts, roles, credentials, tokens, sessions and authorization rules."""
