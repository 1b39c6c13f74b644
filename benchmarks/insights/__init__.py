"""Insight latency on a large synthetic data set: ``bench`` times the endpoints against a daemon;
``generate`` writes the data (``catalogue`` static data, ``plan`` visitors, ``sessions``,
``ids``, ``rows`` table columns, ``load`` into chDB)."""
