"""The store: one DuckDB file filled by the manager from run directories (jobs never write it)."""
