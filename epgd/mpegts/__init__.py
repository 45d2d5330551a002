"""
MPEG-TS as bytes: packets, PSI, PES headers and clocks, entry points, the splicers and the
slate. Pure functions of their input and explicit state: no Twisted, no logging, no other
epgd package (``tests/mpegts/test_purity.py`` holds every module here to that).
"""
