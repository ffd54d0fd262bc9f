"""Slack: bolt wiring (:mod:`.app`), the Block Kit surface and native streaming
(:mod:`.surface`), Slack's rate limits kept on our side (:mod:`.pace`) and what people type
(:mod:`.commands`)."""

from bot.adapters.slack.app import SlackAdapter

__all__ = ["SlackAdapter"]
