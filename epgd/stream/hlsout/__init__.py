"""
HLS output (SPEC §16): each running channel's output program cut into segments
(``epgd.mpegts.segment``) and kept in a window (``window``), the playlist and segment answers
and who watches (``service``), and one segment written to one viewer (``sender``).
"""
