"""Features: views declared in code (`definitions`), kept offline in the lake and online in
SQLite (`online`), joined point in time for training and by key for serving (`store`)."""

from esteira.features.definitions import (
    FeatureError,
    FeatureService,
    FeatureView,
    feature_service,
    feature_view,
)
from esteira.features.store import FeatureStore

__all__ = [
    "FeatureError",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "feature_service",
    "feature_view",
]
