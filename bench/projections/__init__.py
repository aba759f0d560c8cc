"""Projection benchmark: projector ingest beside a plain batched INSERT of the same rows."""
