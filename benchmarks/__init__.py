"""Event Lens benchmarks: load scenarios against a daemon (``python -m benchmarks.run``, this
package's top level and ``scenarios/``), micro-benchmarks without Ray (``micro/``) and insight
latency on a large synthetic data set (``insights/``). See ``benchmarks/README.md``."""
