"""``psutil``: installed on its own, or the copy Ray ships in ``ray/thirdparty_files``."""

from __future__ import annotations

import importlib.util
import os
import sys

try:
    import psutil
except ImportError:  # Ray vendors it and puts it on sys.path only when ``ray`` is imported
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        raise
    sys.path.append(os.path.join(next(iter(spec.submodule_search_locations)), "thirdparty_files"))
    import psutil

__all__ = ["psutil"]
