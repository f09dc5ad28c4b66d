"""Telegram: the sender (limits, parts, retries, acknowledgement, escalation) and
the bot's commands. May import the service and everything below it."""
