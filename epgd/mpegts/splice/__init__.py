"""
A channel's output program across cuts (SPEC §7.1): the continuous splicer, its passthrough
twin, the fixed PID layout and the one clock.
"""
