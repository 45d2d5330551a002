"""
A channel's output program across cuts (SPEC §7.1). ``seam.Splicer`` is what a channel holds:
``continuous.ContinuousSplicer`` (one unbroken program: ``rewrite.Rewriter`` and the hot path in
``chunk`` over the fixed PID layout of ``layout`` and the one clock of ``timeline``) or its
passthrough twin, ``passthrough.PassthroughSplicer``.
"""
