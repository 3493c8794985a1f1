"""Summaries of data that merge and compare: column profiles (quantiles, histograms, category
counts) and the distances and tests between them. Data validation and monitoring share them."""
