"""taxrisk: risk scoring and dispatch for tax administrations."""

__version__ = "0.1.0"
