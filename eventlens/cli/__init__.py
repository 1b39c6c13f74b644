"""The ``eventlens`` command line: one command per module, assembled in :mod:`eventlens.cli.main`."""
