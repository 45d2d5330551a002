"""
epgd as a .tac file: ``twistd -ny epgd.tac``.

Reads the configuration named by $EPGD_CONFIG (default ./epgd.toml) and builds the same
service tree as ``twistd epgd`` does. A bad configuration stops the start with one line.
"""

import os
import sys

from twisted.application import service

from epgd.config import ConfigError, load_config
from epgd.tap import build_service

application = service.Application("epgd")

try:
    _config = load_config(os.environ.get("EPGD_CONFIG") or "epgd.toml")  # set but empty: the default too
except ConfigError as _error:
    print(str(_error), file=sys.stderr)
    raise SystemExit(1) from None

from twisted.internet import reactor  # noqa: E402 -- only after the configuration is known good

build_service(_config, reactor).setServiceParent(application)
