"""The telemetry domain: reading match files and extracting table rows, no I/O past the file."""
