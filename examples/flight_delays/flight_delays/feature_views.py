"""Feature views of the flight project: what is known about the weather at an airport and
about a plane, kept in the feature store for training (point in time) and serving (latest)."""

from datetime import timedelta

from esteira.features import feature_view

weather_at_origin = feature_view(
    "weather_at_origin",
    source="raw_weather",
    entities=["origin"],
    timestamp="time_hour",
    features=[
        "temp",
        "dewp",
        "humid",
        "wind_dir",
        "wind_speed",
        "wind_gust",
        "precip",
        "pressure",
        "visib",
    ],
    ttl=timedelta(hours=3),
    description="Hourly weather observed at each New York airport.",
)

plane = feature_view(
    "plane",
    source="raw_planes",
    entities=["tailnum"],
    features=["plane_year", "seats"],
    transform=lambda planes: planes.rename(columns={"year": "plane_year"}),
    description="The plane register: year of manufacture and seats, by tail number.",
)
