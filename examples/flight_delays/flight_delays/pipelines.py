"""The training pipeline: land the `months` months up to `end`, build features, train on
the earlier flights, evaluate on the later ones, register as challenger, and promote to
champion if the gates of esteira.toml let it through (the built-in `promote` step)."""

from esteira import pipeline
from esteira.steps import promote
from flight_delays.features import features, materialize
from flight_delays.ingest import flights, ingest
from flight_delays.model import evaluate, register, split, train

train_pipeline = pipeline(
    "train",
    [ingest, flights, materialize, features, split, train, evaluate, register, promote],
    params={"end": "2013-03", "months": 3},
    description="Predict departures delayed more than 15 minutes at EWR, JFK and LGA.",
)
