"""Loopback stand-ins for outside services; nothing here reaches the internet."""
