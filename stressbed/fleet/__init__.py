"""The k6 runner fleet: the code that runs the same on this machine and in a pod.

It owns the execution ``segments`` (runner *i* of *N*), k6's REST API (``_k6api``), starting
a fleet together (``release``: setup() once, then every runner resumed at once), one
``runner`` (a supervised k6 on one segment, its samples folded into a result document, and in
a pod its ``control`` endpoint, which answers only the run's token), the ``environment`` a
runner gets (what the scenario reads and an allow-list, nothing else), the ``live`` merge of
the runners' snapshots (the progress line and fleet-wide aborts, locally and in the
coordinator), the in-cluster ``coordinator``,
``usage`` (k6's CPU and what it may use), and the process helpers every process-owning layer shares
(``process``: parent-death signals, free ports, teardown that a second Ctrl-C cannot cut
short; ``oom``: telling an OOM kill from another SIGKILL). It may import
:mod:`stressbed.results`, :mod:`stressbed.scenario` and :mod:`stressbed.errors`; never
:mod:`stressbed.stack`, the backends or the app.
"""
