"""
epgd.mpegts is pure bytes (DESIGN "Layout", STYLE 23): every module there is a function of its
input bytes and explicit state — no Twisted, no zope, no logging, no other epgd package, nothing
that does I/O or reads a clock — so it is tested with byte strings and hypothesis and runs the
same inside the reactor, a thread or a tool. Each module's source is read with ``ast`` (nothing
is imported), and every import and I/O builtin it names is held to that.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import epgd.mpegts

PACKAGE = "epgd.mpegts"
ROOT = Path(epgd.mpegts.__file__).parent

#: the standard library a byte-level module may use: computation only
PURE_STDLIB = frozenset({
    "__future__", "array", "binascii", "bisect", "collections", "collections.abc", "dataclasses",
    "enum", "functools", "heapq", "itertools", "math", "operator", "struct", "typing", "unicodedata",
})
#: standard modules that also do I/O, allowed for these pure names only
LIMITED = {"sys": frozenset({"byteorder"})}
#: packages outside the standard library that are pure (Pillow draws the slate's text in memory,
#: with the font it carries: no file, no system font; numpy reads a splicer's chunk whole)
PURE_PACKAGES = frozenset({"attrs", "attr", "PIL", "numpy"})
#: what is forbidden by name, and why (the message a failure gives)
FORBIDDEN = {
    "twisted": "Twisted: byte code runs without a reactor",
    "zope": "zope: interfaces belong to the connection code",
    "logging": "logging: count in the hot loop, let the caller log once (notes)",
    "epgd": "another epgd package: mpegts is the bottom layer and imports only itself",
}
#: builtins that do I/O or import by name
IO_BUILTINS = frozenset({"open", "print", "input", "breakpoint", "__import__", "exec", "eval", "compile"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of a relative import ``from ...name import`` in ``module``."""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([name] if name else []))


def _judge(imported: str) -> str | None:
    """Why ``imported`` may not be imported by a pure module, or None when it may."""
    top = imported.split(".")[0]
    if top == "epgd":
        return None if imported == PACKAGE or imported.startswith(PACKAGE + ".") else FORBIDDEN["epgd"]
    if top in FORBIDDEN:
        return FORBIDDEN[top]
    if top in LIMITED:
        return None  # its names are checked where they are used
    if top in sys.stdlib_module_names:
        return None if imported in PURE_STDLIB or top in PURE_STDLIB else (
            "a standard module that does I/O or reads a clock (pure ones: " + ", ".join(sorted(PURE_STDLIB)) + ")")
    if top in PURE_PACKAGES:
        return None
    return f"not a package known to be pure ({', '.join(sorted(PURE_PACKAGES))})"


def impurities(source: str, module: str, is_package: bool = False, filename: str = "<source>") -> list[str]:
    """Every import or I/O call in ``source`` (module ``module``) that breaks purity, one line each."""
    tree = ast.parse(source, filename)
    found: list[str] = []
    limited_names: dict[str, str] = {}  # local name -> the LIMITED module it stands for

    def bad(node: ast.AST, what: str, why: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {module} {what} — {why}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                why = _judge(alias.name)
                if why is not None:
                    bad(node, f"imports {alias.name}", why)
                if alias.name in LIMITED:
                    limited_names[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            imported = (_resolve(module, is_package, node.level, node.module) if node.level
                        else node.module or "")
            # ``from . import psi`` and ``from epgd import config`` import the modules they name
            whole = node.module is None or imported == "epgd"
            for name in ([f"{imported}.{a.name}" for a in node.names] if whole else [imported]):
                why = _judge(name)
                if why is not None:
                    bad(node, f"imports {name}", why)
            if imported in LIMITED:
                for alias in node.names:
                    if alias.name not in LIMITED[imported]:
                        bad(node, f"imports {imported}.{alias.name}",
                            f"only {', '.join(sorted(LIMITED[imported]))} of {imported} is pure")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in IO_BUILTINS:
            bad(node, f"calls {node.func.id}()", "I/O (or an import by name) in byte code")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in limited_names):
            real = limited_names[node.value.id]
            if node.attr not in LIMITED[real]:
                bad(node, f"uses {real}.{node.attr}", f"only {', '.join(sorted(LIMITED[real]))} of {real} is pure")
    return found


class PurityTests(SynchronousTestCase):
    def test_every_mpegts_module_is_pure(self) -> None:
        paths = sorted(ROOT.rglob("*.py"))
        self.assertIn(ROOT / "splice" / "continuous.py", paths)  # the walk found the package
        found = []
        for path in paths:
            found += impurities(path.read_text(), module_name(path), path.name == "__init__.py",
                                str(path.relative_to(ROOT.parent.parent)))
        if found:
            self.fail("impure imports in epgd.mpegts:\n" + "\n".join(found))


class CheckerTests(SynchronousTestCase):
    """The checker itself fails on what it must catch, and names the module and the import."""

    def check(self, source: str, module: str = "epgd.mpegts.splice.chunk", is_package: bool = False) -> list[str]:
        return impurities(source, module, is_package, "x.py")

    def test_the_framework_logging_and_other_epgd_packages(self) -> None:
        self.assertEqual(self.check("from twisted.internet import reactor\n"),
                         ["x.py:1: epgd.mpegts.splice.chunk imports twisted.internet — "
                          "Twisted: byte code runs without a reactor"])
        self.assertIn("zope", self.check("from zope.interface import implementer\n")[0])
        self.assertIn("imports logging — logging", self.check("import logging\n")[0])
        self.assertIn("imports epgd.stream.upstream", self.check("from epgd.stream.upstream import Upstream\n")[0])
        self.assertIn("imports epgd.net", self.check("from ...net import timers\n")[0])
        self.assertIn("imports epgd.config", self.check("import epgd.config\n")[0])
        self.assertIn("imports epgd.config", self.check("from epgd import config\n")[0])

    def test_io_modules_and_builtins(self) -> None:
        for source in ("import os\n", "import socket\n", "from subprocess import run\n", "import time\n",
                       "from pathlib import Path\n", "import importlib\n"):
            self.assertEqual(len(self.check(source)), 1, source)
        self.assertIn("calls open()", self.check("data = open('x').read()\n")[0])
        self.assertIn("calls print()", self.check("def f() -> None:\n    print('x')\n")[0])
        self.assertIn("uses sys.stdout", self.check("import sys\nsys.stdout.write('x')\n")[0])
        self.assertIn("imports sys.stdin", self.check("from sys import byteorder, stdin\n")[0])
        self.assertIn("requests", self.check("import requests\n")[0])

    def test_what_is_allowed(self) -> None:
        source = ("from __future__ import annotations\nimport sys\nfrom array import array\n"
                  "from collections.abc import Callable\nfrom enum import Enum\nfrom attrs import frozen\n"
                  "from epgd.mpegts.psi import payload_start\nfrom . import layout\nfrom .. import pes\n"
                  "from .layout import BULK\nimport numpy as np\nLITTLE = sys.byteorder == 'little'\n")
        self.assertEqual(self.check(source), [])
        self.assertEqual(self.check("from . import packet\n", "epgd.mpegts", is_package=True), [])
        self.assertEqual(self.check("from .. import net\n", "epgd.mpegts", is_package=True),
                         [f"x.py:1: epgd.mpegts imports epgd.net — {FORBIDDEN['epgd']}"])
