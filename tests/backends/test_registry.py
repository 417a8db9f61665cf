"""The backend registry: names to classes, imported only when asked for."""

from __future__ import annotations

import pytest

from stressbed.backends import registry
from stressbed.backends.local import LocalBackend
from stressbed.errors import ConfigError


def test_a_name_gives_its_backend_built_from_its_own_options():
    backend = registry.create("local", {"port": 9999, "context": "prod"})
    assert isinstance(backend, LocalBackend)
    assert backend.options.port == 9999


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as error:
        registry.backend_class("cloud")
    assert str(error.value) == "--backend: got 'cloud'; expected 'local', 'docker' or 'kubernetes'"


def test_a_backend_whose_extra_is_missing_says_what_to_install(monkeypatch):
    monkeypatch.setitem(
        registry.BACKENDS,
        "docker",
        {"class": "stressbed_missing_extra.backend:DockerBackend", "err": "pip install x[docker]"},
    )
    with pytest.raises(ConfigError) as error:
        registry.backend_class("docker")
    assert str(error.value) == (
        "--backend docker: got 'missing Python package stressbed_missing_extra'; expected "
        "pip install x[docker]"
    )
    assert error.value.exit_code == 2


def test_a_bad_option_value_is_the_backends_own_error():
    with pytest.raises(ConfigError, match=r"^--port: got -1; expected a port 0\.\.65535"):
        registry.create("local", {"port": -1})
    with pytest.raises(ConfigError, match=r"^--image-pull-policy: got 'Sometimes'"):
        registry.create("kubernetes", {"image_pull_policy": "Sometimes"})
