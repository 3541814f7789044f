"""Scoring runs, dispatch, the case store, the API, the pages and the reports."""
