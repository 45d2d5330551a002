"""
Schedule -> bytes: the playlist (``m3u``), the guide (``xmltv``), ``schedule_json``, and
``Published``, which renders them once per schedule for the web API to serve from memory.
"""

from epgd.publish.outputs import Published

__all__ = ["Published"]
