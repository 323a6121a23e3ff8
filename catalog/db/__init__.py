"""The catalogue database: the engine (migrated on first use), the tables, raw driver connections."""
