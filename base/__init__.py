"""The ground floor: errors, settings, files, staging, parallel work, TOML reading, the clock and
the environment Airflow runs in.

Nothing here imports anything else of the project (import-linter checks it), so every other
room may import from here.
"""
