"""The central side: MQTT subscriber -> validated rows in SQLite, and fleet queries."""
