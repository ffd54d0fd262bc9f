"""Runs a snippet under bubblewrap with hard limits (arrives with the snippet-testing issue)."""
