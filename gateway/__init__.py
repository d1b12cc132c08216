"""Meter-reading intake gateway."""
