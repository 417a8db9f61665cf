"""The stack under test: what a run provisions, and the pure controllers that run it.

It owns the ``spec`` (StackSpec: target, replicas, requests and limits, probes, HPA, quota,
LimitRange, security; validated whole), the Kubernetes ``quantities``, the ``network``
addresses a stack's policy admits (CIDRs), the reference
``agent``'s spec, and the clock-driven controllers with Kubernetes semantics that a backend
applies to real processes: the ``hpa`` algorithm, the ``probes`` state machine and a
replica's ``lifecycle`` (restarts with back-off, termination, deletion). Pure: no processes,
no threads. It imports only :mod:`stressbed.errors`.
"""
