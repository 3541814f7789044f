"""The case store: models, sessions and migrations, the action log, cases and users."""
