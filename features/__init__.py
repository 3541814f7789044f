"""Feature layer: loading and validation of the contract tables, the indicator catalog,
industry evaluation models and the point-in-time feature matrix."""
