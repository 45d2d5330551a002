"""
The shape of the tree (DESIGN.md "Layout"), read from the code with ``ast``: packages import
only the layers below them, no import cycle exists (imports inside functions count), and no
module outgrows 450 lines. ``tests/mpegts/test_purity.py`` holds ``epgd.mpegts`` to more.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import epgd

ROOT = Path(epgd.__file__).parent
MAX_LINES = 450

#: package -> what it must never import (the layers above it, or a sibling it must not know)
NEVER = {
    "epgd.mpegts": ("epgd.net", "epgd.hls", "epgd.stream", "epgd.sources", "epgd.schedule", "epgd.config"),
    "epgd.net": ("epgd.hls", "epgd.stream", "epgd.sources", "epgd.schedule", "epgd.mpegts", "epgd.web"),
    "epgd.hls": ("epgd.stream", "epgd.sources", "epgd.schedule", "epgd.web"),
    "epgd.sources": ("epgd.stream", "epgd.hls", "epgd.schedule", "epgd.publish", "epgd.web"),
    "epgd.schedule": ("epgd.stream", "epgd.hls", "epgd.publish", "epgd.web"),
    "epgd.publish": ("epgd.stream", "epgd.hls", "epgd.web"),
    "epgd.stream": ("epgd.web", "epgd.tap", "epgd.catalog", "epgd.demo", "epgd.metrics", "epgd.status"),
    "epgd.hdhr.deviceid": ("epgd.config", "epgd.hdhr.device", "epgd.web"),
    "epgd.config": ("epgd.hdhr.device", "epgd.stream", "epgd.web", "epgd.catalog"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The epgd modules ``path`` imports anywhere in it (functions and TYPE_CHECKING included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("epgd"):
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return found


class LayoutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.known = modules()
        self.graph = {name: imports(path, self.known) - {name} for name, path in self.known.items()}

    def test_no_import_cycle(self) -> None:
        self.assertEqual(cycles(self.graph), [])

    def test_cycle_finder_finds_one(self) -> None:
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [["a", "b", "c"]])

    def test_layers_import_only_downwards(self) -> None:
        wrong = []
        for name, targets in sorted(self.graph.items()):
            for package, forbidden in NEVER.items():
                if name == package or name.startswith(package + "."):
                    wrong += [f"{name} imports {t}" for t in sorted(targets)
                              if any(t == f or t.startswith(f + ".") for f in forbidden)]
        self.assertEqual(wrong, [])

    def test_no_module_past_450_lines(self) -> None:
        long = {name: n for name, path in self.known.items()
                if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
        self.assertEqual(long, {})
