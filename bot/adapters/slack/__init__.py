"""Slack: bolt wiring (:mod:`.app`), the Block Kit surface (:mod:`.surface`) and what people
type (:mod:`.commands`)."""

from bot.adapters.slack.app import SlackAdapter

__all__ = ["SlackAdapter"]
