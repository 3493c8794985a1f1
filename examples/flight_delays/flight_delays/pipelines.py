"""The training pipeline: land the months from `start` to `end`, build features, train on
the earlier flights, evaluate on the later ones, register."""

from esteira import pipeline
from flight_delays.features import features
from flight_delays.ingest import flights, ingest
from flight_delays.model import evaluate, register, split, train

train_pipeline = pipeline(
    "train",
    [ingest, flights, features, split, train, evaluate, register],
    params={"start": "2013-01", "end": "2013-03"},
    description="Predict departures delayed more than 15 minutes at EWR, JFK and LGA.",
)
