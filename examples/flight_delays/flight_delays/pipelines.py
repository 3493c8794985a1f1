"""The training pipeline: land the `months` months up to `end`, build features, train on
the earlier flights, evaluate on the later ones, register as challenger, and promote to
champion if the gates let it through."""

from esteira import pipeline
from flight_delays.features import features, materialize
from flight_delays.ingest import flights, ingest
from flight_delays.model import evaluate, register, split, train, validate_model

train_pipeline = pipeline(
    "train",
    [ingest, flights, materialize, features, split, train, evaluate, register, validate_model],
    params={"end": "2013-03", "months": 3},
    description="Predict departures delayed more than 15 minutes at EWR, JFK and LGA.",
)
