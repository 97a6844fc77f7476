"""``switchman label``: outcome tables made from the user's own prompts and pool models."""
