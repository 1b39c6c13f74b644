"""The package's layers, read from its imports: no circles, and nothing below ``api/`` imports it.

Every ``import`` counts, including the ones inside functions, so a lazy import cannot hide a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "eventlens"
# the layers below the HTTP layer, and the write path, which must not depend on the read side
BELOW_API = ("ingest", "buffer", "storage", "insights", "actors", "records", "errors", "config")
WRITE_PATH = ("ingest", "buffer", "storage", "actors")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("eventlens"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("eventlens"))
    return {m for m in found if m in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_no_import_circles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            assert state.get(dep) != 1, "import circle: " + " → ".join([*path, dep])
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def _crossing(from_layers: tuple[str, ...], to_layer: str) -> list[str]:
    return [
        f"{m} → {d}"
        for m, deps in _graph().items()
        for d in deps
        if _layer(m) in from_layers and _layer(d) == to_layer
    ]


def test_nothing_below_the_http_layer_imports_it() -> None:
    assert not _crossing(BELOW_API, "api")


def test_the_write_path_does_not_import_the_read_side() -> None:
    assert not _crossing(WRITE_PATH, "insights")
    # and at run time: a shard process loads neither insights/ nor api/
    code = (
        "import sys, eventlens.actors.registry, eventlens.backends; "
        "print(sorted(m for m in sys.modules if m.startswith(('eventlens.insights', 'eventlens.api'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
