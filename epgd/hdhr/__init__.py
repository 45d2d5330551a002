"""
HDHomeRun tuner emulation (SPEC §10): the device id (pure: ``deviceid``, which the
configuration checks), the HTTP documents (``device``) and UDP discovery (``discovery``).
"""
