"""The broker side: connection parameters, queue topology, publishing with confirms, consuming."""
