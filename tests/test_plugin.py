"""
Tests for twisted/plugins/epgd_plugin.py: twistd finds epgd through Twisted's plugin system.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

import epgd.tap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PluginTests(SynchronousTestCase):
    def epgd_plugin(self) -> IServiceMaker:
        found = [p for p in getPlugins(IServiceMaker) if p.tapname == "epgd"]
        self.assertEqual(len(found), 1, "expected exactly one epgd IServiceMaker plugin")
        return found[0]

    def test_discovered(self) -> None:
        plugin = self.epgd_plugin()
        self.assertTrue(plugin.description)

    def test_points_at_tap(self) -> None:
        plugin = self.epgd_plugin()
        self.assertIs(plugin.options, epgd.tap.Options)
        self.assertIs(plugin.makeService, epgd.tap.makeService)

    def test_importing_plugin_leaves_reactor_alone(self) -> None:
        """twistd imports every plugin before choosing a reactor: none may be installed here."""
        code = (
            "import sys, twisted.plugins.epgd_plugin, epgd.tap; "
            "print('twisted.internet.reactor' in sys.modules)"
        )
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                             check=True).stdout
        self.assertEqual(out.strip(), "False")

    def test_no_package_init_in_plugins_dir(self) -> None:
        """An __init__.py there would hide Twisted's own plugins (twisted.plugins is a namespace)."""
        self.assertFalse(os.path.exists(os.path.join(ROOT, "twisted", "plugins", "__init__.py")))
        self.assertFalse(os.path.exists(os.path.join(ROOT, "twisted", "__init__.py")))
