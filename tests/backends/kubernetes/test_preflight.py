"""The Kubernetes backend's preflight: what is missing is one line, exit 2, nothing created."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("kubernetes")

from stressbed.backends.kubernetes import KubernetesOptions, preflight
from stressbed.errors import ConfigError

from .fakes import KUBECONFIG


def test_preflight_finds_the_current_context(cluster_env):
    target = preflight(KubernetesOptions(kubeconfig=cluster_env))
    assert target.context == "kind-stressbed"
    assert preflight(KubernetesOptions(kubeconfig=cluster_env, context="prod")).context == "prod"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"context": "staging"},
            "--context: got 'staging'; expected a context of {config}: kind-stressbed, prod",
        ),
        (
            {"kubeconfig": "missing"},
            "--kubeconfig: got '{missing}'; expected an existing kubeconfig file",
        ),
    ],
)
def test_preflight_names_what_is_missing(cluster_env, change, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = Path("missing")  # relative: shown whole, not cut at 80 characters
    options = KubernetesOptions(
        kubeconfig=missing if "kubeconfig" in change else cluster_env,
        context=change.get("context"),
    )
    with pytest.raises(ConfigError) as error:
        preflight(options)
    assert str(error.value) == message.format(config=cluster_env, missing=missing)


def test_without_the_pulumi_cli_the_run_is_one_line_exit_2_and_creates_nothing(tmp_path):
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"}
    if shutil.which("pulumi", path=env["PATH"]):
        pytest.skip("a real pulumi CLI is on PATH here")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stressbed",
            "run",
            "--scenario",
            "ingest_mix",
            "--backend",
            "kubernetes",
            "--kubeconfig",
            str(tmp_path / "kubeconfig"),
            "--results",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "stressbed: error: --backend kubernetes: got 'no pulumi CLI on PATH'; expected the "
        "Pulumi CLI (curl -fsSL https://get.pulumi.com | sh, then open a new shell)\n"
    )
    assert not (tmp_path / "r").exists()


def test_every_file_of_kubeconfigs_list_is_merged_as_kubectl_merges_them(tmp_path):
    first = tmp_path / "a"
    first.write_text("apiVersion: v1\nkind: Config\ncontexts:\n- name: one\n  context: {}\n")
    second = tmp_path / "b"
    second.write_text(KUBECONFIG)  # kind-stressbed (its current context) and prod
    listed = os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)])
    env = {"KUBECONFIG": listed}
    # The missing file skipped, as kubectl skips it; the current context from the first file
    # that sets one; every file's contexts.
    access = preflight(KubernetesOptions(), env, engine=False)
    assert (access.kubeconfig, access.merged_with, access.context) == (
        first,
        (second,),
        "kind-stressbed",
    )
    assert access.path_list == f"{first}{os.pathsep}{second}"
    assert preflight(KubernetesOptions(context="one"), env, engine=False).context == "one"
    with pytest.raises(ConfigError) as unknown:
        preflight(KubernetesOptions(context="staging"), env, engine=False)
    assert str(unknown.value) == (
        f"--context: got 'staging'; expected a context of {first}{os.pathsep}{second}: "
        "one, kind-stressbed, prod"
    )
    with pytest.raises(ConfigError) as none:
        preflight(KubernetesOptions(), {"KUBECONFIG": str(tmp_path / "missing")}, engine=False)
    assert none.value.field == "KUBECONFIG"


def test_a_relative_kubeconfig_is_made_absolute(cluster_env, monkeypatch):
    monkeypatch.chdir(cluster_env.parent)
    access = preflight(KubernetesOptions(kubeconfig=Path(cluster_env.name)), engine=False)
    assert access.kubeconfig == cluster_env
    listed = preflight(KubernetesOptions(), {"KUBECONFIG": cluster_env.name}, engine=False)
    assert listed.path_list == str(cluster_env)
