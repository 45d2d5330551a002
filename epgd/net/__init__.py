"""
HTTP plumbing shared by provider fetches (``sources``), HLS input (``hls``) and provider
streams (``stream``): the header-limited client pool, response helpers, the one way a failed
request becomes a log line and a fault word, and timer helpers. Knows nothing of MPEG-TS,
schedules or channels.
"""
