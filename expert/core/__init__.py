"""Plumbing every stage shares: errors, data paths, YAML with line numbers, schemas, the workload table."""
