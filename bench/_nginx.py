"""
nginx beside epgd, for the stream benchmarks: a reverse proxy of the same fake provider
(``proxy_buffering off``, one worker, 127.0.0.1 on a free port), configured from a temp dir
of its own and killed at the end. nginx is not a dependency of epgd or its CI; for the
benchmarks install it with ``apt-get install nginx-light`` (or ``nginx``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import psutil
from _common import end

CONF = """\
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_buffering off;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    """One nginx (master + 1 worker) proxying ``127.0.0.1:upstream``; its CPU is the tree's."""

    def __init__(self, upstream: int) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise SystemExit("nginx is not installed: apt-get install nginx-light")
        self.tmp = tempfile.mkdtemp(prefix="bench-nginx-")
        self.port = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(tmp=self.tmp, port=self.port, upstream=upstream))
        self.proc = subprocess.Popen([binary, "-p", self.tmp, "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"nginx did not start; see {self.tmp}/error.log") from None
                time.sleep(0.05)
        self.ps = psutil.Process(self.proc.pid)

    def _tree(self) -> list[psutil.Process]:
        return [self.ps, *self.ps.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for p in self._tree()) / 1e6

    def connections_to(self, port: int) -> int:
        count = 0
        for p in self._tree():
            count += sum(1 for c in p.net_connections(kind="tcp")
                         if c.raddr and c.raddr.port == port
                         and c.status == psutil.CONN_ESTABLISHED)
        return count

    def stop(self) -> None:
        end(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)
