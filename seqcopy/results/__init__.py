"""Grids in, tables out: sweeps of settings, spreads over seeds, and the markdown report."""
