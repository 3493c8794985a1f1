"""Data validation (profiles, schema and value skew) and, later, model validation gates."""
