"""
One combined channel's stream: the façade the manager holds, the switching state machine,
and the policy functions that decide what the machine is told.
"""
