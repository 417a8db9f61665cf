"""``stressbed export``: the stack a run would provision, as files another tool starts.

    stressbed export compose    [--scenario S] [--profile P] [--profiles FILE] [-o FILE|-]
                                [--image REF] [--port P] [--io-device /dev/X]
    stressbed export kubernetes [--scenario S] [--profile P] [--profiles FILE] [-o FILE|-]
                                [--image REF] [--namespace NS]

The StackSpec is resolved as ``stressbed run`` resolves it (the reference agent < the scenario
module's ``stack`` < the profile file's layers and the environment's), then translated by the
backend that owns the translation: :mod:`stressbed.backends.docker.compose` for a Compose
file, :func:`stressbed.backends.kubernetes.manifests.agent_manifests` (what the Pulumi
component applies) for the manifests. No secret's value is ever written: Compose reads each
from its own environment, the Secret manifest's values are left empty to fill. Exit 0
written, 2 bad input (an unknown scenario or profile, a stack that does not validate, an
output that cannot be written).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from ..errors import ConfigError
from ..scenario import catalog
from ..stack.spec import StackSpec
from .settings import Settings, resolve, stack_of

__all__ = ["export_commands", "exported_stack"]

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
#: What a pod spec has no field for (the Kubernetes backend refuses a run with them).
_NOT_IN_A_POD = {
    "io": "Kubernetes does not limit a pod's IO",
    "pids": "the kubelet's podPidsLimit (a node setting) holds a pod's processes",
    "nofile": "the container runtime's default open-file limit holds it",
}


def export_commands(commands: Any) -> None:
    """Add ``export compose`` and ``export kubernetes`` to the command line's subcommands."""
    cmd = commands.add_parser(
        "export",
        help="write the stack a run would provision as a Compose file or Kubernetes manifests",
        description="Resolve the StackSpec as `stressbed run` does (the reference agent, the "
        "scenario module's stack, the profile's) and write it for another tool to start. "
        "Exit codes: 0 written, 2 bad input (an unknown scenario or profile, a stack that "
        "does not validate, an output that cannot be written).",
    )
    kinds = cmd.add_subparsers(dest="kind", required=True, metavar="KIND")
    compose = kinds.add_parser(
        "compose",
        help="a docker-compose.yml (the Compose Specification) with the Docker backend's limits",
        description="One service of the target's image, its replicas, limits and security as "
        "the Docker backend runs them; what Compose has no field for is said in the header. "
        "Needs the docker extra.",
    )
    _common(compose)
    compose.add_argument(
        "--port",
        type=int,
        metavar="P",
        help="the first port published on 127.0.0.1, one a replica (the target's port)",
    )
    compose.add_argument(
        "--io-device",
        metavar="/dev/X",
        help="the disk stack.io's throttles apply to (without it they are left out, and said)",
    )
    compose.set_defaults(handler=cmd_export_compose)
    kubernetes = kinds.add_parser(
        "kubernetes",
        help="the agent stack's manifests, as the Pulumi component applies them",
        description="The agent stack's manifests (multi-document YAML) from the same "
        "translation the Pulumi component and the kubernetes backend use; the Secret's "
        "values are empty, to fill before applying.",
    )
    _common(kubernetes)
    kubernetes.add_argument(
        "--namespace", default="stressbed", metavar="NS", help="the namespace (stressbed)"
    )
    kubernetes.set_defaults(handler=cmd_export_kubernetes)


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--scenario", metavar="NAME|PATH", help="whose module's stack applies (the profile's)"
    )
    command.add_argument("--profile", metavar="NAME", help="the profile whose stack applies")
    command.add_argument("--profiles", type=Path, metavar="FILE", help="the profile file")
    command.add_argument(
        "-o", "--output", default="-", metavar="FILE|-", help="where to write it (-: stdout)"
    )
    command.add_argument(
        "--image",
        metavar="REF",
        help="the target's image (the profile's agent_image, else the StackSpec's)",
    )


def exported_stack(args: argparse.Namespace) -> tuple[StackSpec, Settings]:
    """The StackSpec a run with these options would provision, and the settings it came
    from (the environment's layer included, as for ``stressbed run``)."""
    settings = resolve(
        {"scenario": args.scenario, "agent_image": args.image},
        profile=args.profile,
        file=args.profiles,
    )
    name = settings.values["scenario"]
    return stack_of(settings, catalog.load_stack(name) if name else None), settings


def _origin(command: str, settings: Settings) -> tuple[str, ...]:
    scenario = settings.values["scenario"] or "none"
    profile = settings.profile or "none"
    where = f" of {settings.file}" if settings.file is not None else ""
    return (
        f"Written by `stressbed export {command}` (stressbed {__version__}): the agent stack "
        f"a run provisions for scenario {scenario}, profile {profile}{where}.",
    )


def cmd_export_compose(args: argparse.Namespace) -> int:
    spec, settings = exported_stack(args)
    try:
        from ..backends.docker.compose import compose_file  # noqa: PLC0415 - the docker extra
    except ImportError as exc:
        raise ConfigError(
            "stressbed export compose",
            f"missing Python package {exc.name}",
            "pip install 'stressbed[docker]'",
        ) from None
    found = compose_file(
        spec,
        image=settings.values["agent_image"],
        host_port=args.port,
        io_device=args.io_device,
    )
    _write(found.text(_origin("compose", settings)), args.output)
    return 0


def cmd_export_kubernetes(args: argparse.Namespace) -> int:
    # Only this command loads the Kubernetes backend's translation (no extra needed for it).
    from ..backends.kubernetes.manifests import (  # noqa: PLC0415
        Cluster,
        agent_manifests,
        agent_secret_keys,
    )

    spec, settings = exported_stack(args)
    if not _NAMESPACE.fullmatch(args.namespace):
        raise ConfigError("--namespace", args.namespace, "a DNS label (a-z, 0-9, -)")
    image = settings.values["agent_image"] or spec.target.image
    if not image:
        raise ConfigError("stack.target.image", "", "an image to run (or --image)")
    spec = replace(spec, target=replace(spec.target, image=image))
    manifests = agent_manifests(spec, Cluster(namespace=args.namespace))
    keys = agent_secret_keys(spec)
    header = [
        "Multi-document YAML: `kubectl apply -f FILE`. The translation the Pulumi component",
        "(AgentStack) applies; its ResourceQuota has no room added for a run's runner fleet.",
    ]
    if keys:
        secret = f"{spec.target.name}-secrets"
        header += [
            f"The Secret {secret}'s values are empty: fill its stringData before applying,",
            "or replace it after:",
            f"  kubectl -n {args.namespace} create secret generic {secret} \\",
            *(f'    --from-literal={k}="${k}" \\' for k in keys),
            "    --dry-run=client -o yaml | kubectl apply -f -",
        ]
        for manifest in manifests:
            if manifest["kind"] == "Secret":
                manifest["metadata"]["annotations"] = {
                    "stressbed.dev/fill": "every stringData value, before the agent starts"
                }
    left = [f"- stack.{n}: {why}" for n, why in _NOT_IN_A_POD.items() if getattr(spec, n)]
    if left:
        header += ["Not in a pod spec, left out (a run on the kubernetes backend refuses them):"]
        header += left
    lines = [f"# {line}" for line in textwrap.wrap(_origin("kubernetes", settings)[0], 96)]
    lines += [f"# {line}" for line in header]
    body = yaml.safe_dump_all(manifests, sort_keys=False, default_flow_style=False, width=100)
    _write("\n".join(lines) + "\n---\n" + body, args.output)
    return 0


def _write(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            "--output", output, f"a file that can be written ({exc.strerror})"
        ) from None
    print(f"stressbed: wrote {output}", file=sys.stderr)
