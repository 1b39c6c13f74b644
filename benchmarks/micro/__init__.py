"""Micro-benchmarks without Ray, each a few seconds of one core: µs per event of an ingest replica's
pipeline (``pipeline``), of a buffer shard's core (``shard``) and of user-agent parsing
(``enrichment``)."""
