"""Upstream providers; each speaks OpenAI chat-completions shapes towards the gateway."""
