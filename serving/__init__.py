"""Serving layer: scoring runs, dispatch, the case store, API and pages (later issues)."""
