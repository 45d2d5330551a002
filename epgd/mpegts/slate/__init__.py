"""
The slate (SPEC §14): a still picture with text, as an MPEG-TS source of H.264 and silent
AAC, made in process with no encoder. ``picture`` draws it, ``h264`` and ``aac`` code it
bit by bit, ``mux`` lays PES and TS packets out as templates, ``source`` sends them on a clock.
"""
