"""Discord: slash commands, session threads and buttons, shown through the presenter."""

from bot.adapters.discord.adapter import DiscordAdapter

__all__ = ["DiscordAdapter"]
