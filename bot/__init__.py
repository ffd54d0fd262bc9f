"""codethread's bot: the session core, the chat adapters, the CLI and the composition root."""
