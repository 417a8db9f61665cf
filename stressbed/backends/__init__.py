"""Where the stack and the fleet run: one small interface, several platforms.

It owns the interface every backend implements (``base``: Backend, Stack, Fleet, the fleet's
values and the capabilities a backend declares), the lazy ``registry`` behind ``--backend``,
``existing`` (``--target-url``: a service nobody provisions), and the platforms, each a
subpackage imported only when asked for: ``local/`` (processes on this machine) and
``kubernetes/`` (Pulumi and a cluster). The public test double is
:class:`stressbed.testing.FakeBackend`. It may import :mod:`stressbed.fleet`,
:mod:`stressbed.stack`, :mod:`stressbed.results`, :mod:`stressbed.scenario` and
:mod:`stressbed.errors`; never the app layer.
"""
