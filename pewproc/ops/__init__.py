"""The operator's surface: CLI, logs, metrics and health."""
