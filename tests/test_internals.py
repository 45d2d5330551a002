"""
The inventory of Twisted internals (epgd.internals.INTERNALS) against the installed Twisted and
against epgd's own source: a Twisted upgrade that moves a name fails here, by name, not in
production; a module that starts using an internal without listing it fails here too.

Each use is also exercised where it is used, by a test that fails if the name moved
(``EXERCISED`` below; ``InventoryTests.test_every_use_is_exercised`` checks those tests exist):

* ``epgd.net.pool``: tests/net/test_pool.py — endless headers fail the request (``_parser``,
  ``state``, ``STATUS``/``HEADER``, ``_giveUp``, the pool's ``_factory``), and a persistent
  connection goes back to the pool between two answers (``_quiescentCallback``);
* ``epgd.stream.out.client``: ``ClientUseTests`` here, with a real ``twisted.web`` request;
* ``epgd.configread``: tests/test_config.py ``ErrorTests.test_listen`` (``_parseServer``);
* ``epgd.stream.out.bodywriter``: tests/test_bodywriter.py
  ``OverRealSockets.test_twisted_internals_are_where_the_writer_reads_them``.

``epgd.tap`` used ``StreamServerEndpointService._raiseSynchronously``/``._waitingForPort``;
it now wraps its endpoint instead (public API), tested by tests/test_tap.py ``ListenerTests``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import re
import socket
import textwrap
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from epgd.internals import INTERNALS
from epgd.stream.out.client import Client

EPGD = pathlib.Path(__file__).parent.parent / "epgd"

#: the test that fails when a module's use of its internals breaks
EXERCISED = {
    "epgd.net.pool": (
        "tests.net.test_pool.HeaderLimitedPoolTests.test_endless_headers_fail_the_request_and_drop_the_connection",
        "tests.net.test_pool.HeaderLimitedPoolTests.test_each_response_on_a_persistent_connection_counts_afresh",
    ),
    "epgd.stream.out.client": (
        "tests.test_internals.ClientUseTests.test_a_client_whose_connection_went_before_it_started_registers_nothing",
    ),
    "epgd.configread": ("tests.test_config.ErrorTests.test_listen",),
    "epgd.stream.out.bodywriter": (
        "tests.test_bodywriter.OverRealSockets.test_twisted_internals_are_where_the_writer_reads_them",
    ),
}

#: private names that are not Twisted's (epgd touches them knowingly; not in the inventory)
NOT_TWISTED = {"_replace"}  # namedtuple's public API, despite the underscore


def _tcp_connection() -> Any:
    from twisted.internet import reactor, tcp

    skt = socket.socket()
    try:
        return tcp.Connection(skt, Protocol(), reactor)
    finally:
        skt.close()


def _client_parser() -> Any:
    from twisted.web._newclient import HTTPClientParser

    parser = HTTPClientParser(None, lambda rest: None)
    parser.makeConnection(StringTransport())
    return parser


def _request(module: str) -> Callable[[], Any]:
    def make() -> Any:
        from twisted.web.test.requesthelper import DummyChannel  # what Twisted's own tests use

        return importlib.import_module(module).Request(DummyChannel())
    return make


def _client_factory() -> Any:
    from twisted.web.client import _HTTP11ClientFactory

    return _HTTP11ClientFactory(lambda protocol: None, "127.0.0.1:80")


#: instances of owners whose names are set in ``__init__`` (or later), not on the class
SAMPLES: dict[str, Callable[[], Any]] = {
    "twisted.internet.tcp.Connection": _tcp_connection,
    "twisted.web._newclient.HTTPClientParser": _client_parser,
    "twisted.web.http.Request": _request("twisted.web.http"),
    "twisted.web.server.Request": _request("twisted.web.server"),
    "twisted.web.client._HTTP11ClientFactory": _client_factory,
}


def resolve(dotted: str) -> Any:
    """A module or a class (or any attribute) by its dotted path."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ImportError(dotted)


def _submodule(owner: str, name: str) -> bool:
    try:
        importlib.import_module(f"{owner}.{name}")
    except ImportError:
        return False
    return True


def listed(module: str) -> set[str]:
    return {name for names in INTERNALS.get(module, {}).values() for name in names}


def epgd_modules() -> Iterator[tuple[str, pathlib.Path]]:
    for path in sorted(EPGD.rglob("*.py")):
        parts = path.relative_to(EPGD.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


class InventoryTests(SynchronousTestCase):
    def test_every_name_resolves_on_the_installed_twisted(self) -> None:
        for module, owners in INTERNALS.items():
            for owner, names in owners.items():
                self.assertTrue(owner.startswith("twisted."), owner)
                try:
                    found = resolve(owner)
                except (ImportError, AttributeError) as e:
                    self.fail(f"Twisted moved {owner} ({e}): {module} must follow it")
                sample = None
                for name in names:
                    if hasattr(found, name) or (isinstance(found, ModuleType) and _submodule(owner, name)):
                        continue
                    if sample is None:
                        self.assertIn(owner, SAMPLES, f"Twisted moved {owner}.{name}: {module} must follow "
                                                      "it (or it is set per instance: add a sample)")
                        sample = SAMPLES[owner]()
                    self.assertTrue(hasattr(sample, name),
                                    f"Twisted moved {owner}.{name}: {module} must follow it")

    def test_each_module_still_uses_what_is_listed(self) -> None:
        """A name no longer used comes off the list: the inventory says what is true today."""
        paths = dict(epgd_modules())
        for module, owners in INTERNALS.items():
            self.assertIn(module, paths)
            text = paths[module].read_text()
            for owner, names in owners.items():
                for name in names:
                    self.assertTrue(re.search(rf"\b{re.escape(name)}\b", text),
                                    f"{module} no longer uses {owner}.{name}: take it off the list")

    def test_every_use_is_exercised(self) -> None:
        self.assertEqual(set(EXERCISED), set(INTERNALS))
        for tests in EXERCISED.values():
            for test in tests:
                self.assertTrue(callable(resolve(test)), test)

    def test_no_module_uses_an_unlisted_twisted_import_or_attribute(self) -> None:
        """
        The inventory is complete: private imports from Twisted, ``getattr(x, "_name")`` and
        ``x._name`` on anything epgd does not define itself, module by module.
        """
        trees = {module: ast.parse(path.read_text()) for module, path in epgd_modules()}
        ours = set().union(*(_definitions(tree) for tree in trees.values()))
        for module, tree in trees.items():
            allowed = listed(module) | NOT_TWISTED
            for where, name in _private_uses(tree, ours):
                self.assertIn(name, allowed, f"{module}:{where} uses {name} past Twisted's public API: "
                                             "list it in epgd.internals.INTERNALS (and test its use)")

    def test_no_subclass_reaches_into_an_unlisted_twisted_name(self) -> None:
        """``self._name`` in a subclass of a Twisted class, where ``_name`` is Twisted's."""
        for module, _ in epgd_modules():
            loaded = importlib.import_module(module)
            for cls, used in _subclass_uses(loaded):
                for name in used - listed(module):
                    self.fail(f"{module}.{cls.__name__} uses Twisted's {name}: list it in "
                              "epgd.internals.INTERNALS (and test its use)")


def _definitions(tree: ast.AST) -> set[str]:
    """Names epgd gives things: functions, classes, attributes it assigns, arguments."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            found.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
    return found


def _private_uses(tree: ast.AST, ours: set[str]) -> Iterator[tuple[int, str]]:
    foreign = {alias.asname or alias.name.split(".")[0]
               for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
               and not (getattr(node, "module", None) or "").startswith(("twisted", "epgd"))
               for alias in node.names
               if not alias.name.startswith(("twisted", "epgd"))}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("twisted."):
            for part in (node.module or "").split("."):
                if part.startswith("_"):
                    yield node.lineno, part
            for alias in node.names:
                if alias.name.startswith("_"):
                    yield node.lineno, alias.name
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) > 1
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and node.args[1].value.startswith("_") and not node.args[1].value.startswith("__")):
            yield node.lineno, node.args[1].value
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
              and not node.attr.startswith("__") and node.attr not in ours
              and not (isinstance(node.value, ast.Name) and node.value.id in ({"self", "cls"} | foreign))):
            yield node.lineno, node.attr


def _subclass_uses(module: ModuleType) -> Iterator[tuple[type, set[str]]]:
    """Each class defined in ``module`` with a Twisted base, and the Twisted names it uses on self."""
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module.__name__:
            continue
        bases = [b for b in cls.__mro__[1:] if b.__module__.startswith("twisted.")]
        if not bases:
            continue
        tree = ast.parse(textwrap.dedent(_source(cls)))
        names = {n.attr for n in ast.walk(tree)
                 if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                 and n.value.id in ("self", "cls") and n.attr.startswith("_") and not n.attr.startswith("__")}
        theirs = "".join(_source(b) for b in bases)
        yield cls, {n for n in names
                    if any(n in vars(b) for b in bases) or re.search(rf"\bself\.{re.escape(n)}\b", theirs)}


def _source(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return ""


class ClientUseTests(SynchronousTestCase):
    """``epgd.stream.out.client`` reads ``Request._disconnected``; here on a real twisted.web request."""

    def test_a_client_whose_connection_went_before_it_started_registers_nothing(self) -> None:
        """
        A viewer gone before its stream starts: no producer is registered on a request that
        has no channel any more (that would raise), and the stream lets it go.
        """
        request = SAMPLES["twisted.web.server.Request"]()
        request.connectionLost(Failure(ConnectionDone()))
        gone: list[Client] = []
        client = Client(request, Clock(), buffer_limit=1000, channel_id="nhl_1", on_detach=gone.append)
        client.start(b"\x47" + bytes(187))
        self.assertEqual(gone, [client])
        self.assertEqual(client.reason, "connection closed before the stream started")
        self.assertIsNone(request.producer)
        self.assertEqual(self.successResultOf(client.done), b"")
