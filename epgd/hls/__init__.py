"""
HLS input (SPEC §11): playlists, one live connection's reader, segment and small fetches,
AES-128. Builds on ``epgd.net`` and ``epgd.mpegts``; never imports ``epgd.stream``: a reader
reports to whatever owner implements its ``HlsOwner`` protocol.
"""
