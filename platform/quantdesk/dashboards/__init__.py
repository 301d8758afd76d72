"""Widgets the Voila dashboards in notebooks/dashboards/ compose (the notebooks stay thin)."""
