"""Build and install epgd; ships the twistd plugin and the demo clips."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "epgd" / "__init__.py").read_text()).group(1)

setup(
    name="epgd",
    version=VERSION,
    description="IPTV event-channel proxy: stable combined channels built from provider event "
    "channels, published as M3U and XMLTV and streamed live",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests*"]) + ["twisted.plugins"],
    package_data={"epgd.demo": ["*.ts", "*.sh", "clips/*.ts", "clips/*.sh"],
                  # hls.min.js: hls.js, vendored for the Watch player (its licence beside it)
                  "epgd.status": ["*.html", "*.js", "*.LICENSE.txt"]},
    include_package_data=True,
    install_requires=["twisted>=23.10", "treq>=23.11", "klein>=23.5", "lxml>=4.9", "attrs>=23.1", "tzdata",
                      "prometheus-client>=0.17", "m3u8>=6.0", "cryptography>=42",
                      # the slate draws its text with the scalable font Pillow ships (10.1+)
                      "Pillow>=10.1",
                      # the splicer reads each chunk's packet headers whole (a table lookup per chunk)
                      "numpy>=1.24"],
    extras_require={
        # pyxtream: the real Xtream Codes client library the accounts end-to-end test drives
        "test": ["hypothesis", "coverage", "psutil", "pyxtream>=0.8,<1"],
        # pinned so that CI's verdict does not change with a new release of a checker
        "lint": ["ruff==0.17.6", "mypy==2.4.1", "mypy-zope==1.0.17"],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3.11",
        "Topic :: Multimedia :: Video",
    ],
)
