"""Database engines; each imports its driver only when it first connects."""
