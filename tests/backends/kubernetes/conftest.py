"""Fixtures of the Kubernetes backend's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stressbed.backends.kubernetes import backend as kube_backend

from .fakes import KUBECONFIG


@pytest.fixture
def cluster_env(tmp_path, monkeypatch) -> Path:
    """A kubeconfig, and a `pulumi` on PATH (a stub: the fakes below stand in for it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "pulumi"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    monkeypatch.setattr(kube_backend, "POLL_S", 0.01)
    # Each run's Pulumi state goes under the user's state directory: here, the test's own.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return config
