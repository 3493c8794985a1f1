"""Drift and performance monitoring on summaries (histograms) that merge and scale out."""
