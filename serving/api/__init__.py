"""The HTTP API (CONTRACT section 3): ``create_app(settings)`` in ``main.py``."""
