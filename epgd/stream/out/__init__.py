"""
The viewer side of a channel: the fan-out, coalesced output with its join buffer and
keepalive, one HTTP client per viewer, and the body writer that sends to its socket.
"""
