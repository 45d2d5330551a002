# epgd in a container. Untested here (no Docker engine on the build machines); read with care.
#   docker build -t epgd .
#   docker run -d -p 8080:8080 -v /srv/epgd/config:/config:ro -v epgd-state:/state epgd
# In /config/epgd.toml set   [server] state_dir = "/state"   (see epgd.example.toml); the default
# "./state" lands in the volume too (the working directory is /state), as /state/state.
# Try it without a config:   docker run --rm -p 8080:8080 epgd twistd -n --pidfile= epgd --demo
# Plex, Jellyfin, Emby: add the tuner by hand as HOST:8080 (README). With [hdhr] discovery = true
# epgd also answers HDHomeRun discovery on UDP 65001 (hdhr.discovery_port); broadcasts do not cross
# Docker's port mapping (-p 65001:65001/udp is not enough), so run it with --network host for that.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . /src
# Install, then write Twisted's plugin cache while site-packages is still writable.
RUN pip install /src \
    && python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))" \
    && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /state --shell /usr/sbin/nologin epgd \
    && mkdir -p /state /config \
    && chown epgd:epgd /state

WORKDIR /state
USER epgd
VOLUME ["/state"]
EXPOSE 8080
# only with [hdhr] discovery = true (and --network host, see above)
EXPOSE 65001/udp

# /health is 503 until provider data was loaded once; the check assumes epgd listens on port 8080.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4).status == 200 else 1)"]

STOPSIGNAL SIGTERM
CMD ["twistd", "-n", "--pidfile=", "epgd", "--config", "/config/epgd.toml"]
