"""One module per benchmark scenario; each exposes ``run(bench, ...) -> dict`` (async where it loads)."""
