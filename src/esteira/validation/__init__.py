"""Data validation (schema, value skew and batch history against a profile: bad batches are
quarantined) and model validation (the gates a challenger passes before promotion)."""
