"""
The guide side's result: events from provider data, merged, packed into lanes that stay put
across refreshes (``build.build_schedule``), as an immutable ``model.Schedule``.
"""
