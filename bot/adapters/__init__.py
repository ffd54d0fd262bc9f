"""Adapters translate a platform's events into calls on the session service, and back."""
