"""bench/scale: 1 vs 2 nodes on PostgreSQL, SQLite vs PostgreSQL (see __main__.py)."""
