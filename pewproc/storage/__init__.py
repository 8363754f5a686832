"""Storage: the PostgreSQL schema, its migrations, and the one-transaction write of a match."""
