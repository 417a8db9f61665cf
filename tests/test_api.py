"""The public surface: one sorted __all__, every name importable, nothing else public."""

from __future__ import annotations

import pkgutil

import stressbed


def test_all_is_sorted_and_importable():
    assert stressbed.__all__ == sorted(stressbed.__all__)
    for name in stressbed.__all__:
        assert hasattr(stressbed, name), name


def test_public_names_are_exactly_all():
    public = {n for n in vars(stressbed) if not n.startswith("_")} - {"annotations"}
    # Submodules become attributes once imported; `render` is also the function's name.
    submodules = {m.name for m in pkgutil.iter_modules(stressbed.__path__)}
    exported = set(stressbed.__all__) - {"__version__"}
    assert public - submodules <= exported
    assert exported <= public
