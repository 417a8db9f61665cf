"""``stressbed images`` and ``stressbed gc``: the Docker engine's images and leftovers.

``stressbed images base`` makes the base image from Debian packages (what ``nox -s images``
runs once per machine); ``stressbed images build`` makes the base if missing and builds the
agent and runner images from this checkout (cached by their inputs' hash; a second call
builds nothing). ``stressbed gc`` removes the local backend's replica cgroups of runs whose
stressbed is gone (what is still in them thawed and killed: a replica a ``pause`` fault froze
outlives a ``kill -9`` of stressbed), then the containers, networks and volumes of such runs
(``--all``: of every run, live ones too); with ``--kubernetes``, the namespaces a
``neighbour`` fault made on the cluster whose run's namespace is gone. The Docker and
Kubernetes backends are imported only when one of these runs, so the rest of the command line
never needs their extras.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["engine_commands"]


def engine_commands(commands: Any) -> None:
    """Add ``images`` and ``gc`` to the command line's subcommands."""
    images = commands.add_parser(
        "images",
        help="--backend docker: make the base image, or build the agent and runner images",
        description="Make the images the Docker backend runs, from Debian packages and this "
        "checkout only (no registry is asked). Exit 0 made or found, 2 bad input or no "
        "engine, 3 a build failed.",
    )
    images.add_argument("what", choices=("base", "build"), help="base: the base image only")
    images.add_argument(
        "--base-image",
        metavar="REF",
        help="build on this Python image (on the engine already) instead of stressbed-base",
    )
    images.set_defaults(handler=cmd_images)
    gc = commands.add_parser(
        "gc",
        help="remove what runs whose stressbed was killed left (cgroups, Docker objects)",
        description="Remove the local backend's replica cgroups whose stressbed no longer "
        "runs (thawing and killing what is still in them), then the containers, networks and "
        "volumes labelled stressbed.run whose stressbed no longer runs (without the docker "
        "extra: skipped, said). Images are kept: they are a cache.",
    )
    gc.add_argument(
        "--all", action="store_true", help="every run's, also of a stressbed still running"
    )
    gc.add_argument(
        "--kubernetes",
        action="store_true",
        help="also the neighbour faults' namespaces on the cluster whose run is gone",
    )
    gc.add_argument("--kubeconfig", type=Path, metavar="FILE", help="with --kubernetes")
    gc.add_argument("--context", metavar="NAME", help="with --kubernetes")
    gc.set_defaults(handler=cmd_gc)


def _say(line: str) -> None:
    print(f"stressbed: {line}", file=sys.stderr, flush=True)


def _docker() -> Any:
    """The Docker backend's package, imported now (the docker extra may be missing)."""
    try:
        from ..backends import docker  # noqa: PLC0415 - only these commands need the extra
    except ImportError as exc:
        raise ConfigError(
            "stressbed images/gc",
            f"missing Python package {exc.name}",
            "pip install 'stressbed[docker]'",
        ) from None
    return docker


def cmd_images(args: argparse.Namespace) -> int:
    docker = _docker()
    images = docker.images
    client = docker.connect()
    base = images.ensure_base(client, args.base_image, _say)
    print(f"base {args.base_image or images.base_tag()}: {base[:19]}")
    if args.what == "build":
        checkout = images.find_checkout()
        for which in ("agent", "runner"):
            print(f"{which} {images.ensure_image(client, which, base, checkout, _say)}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from ..backends.local import (  # noqa: PLC0415 - only this command sweeps
        sweep_cgroups,
        sweep_data_mounts,
    )

    print(f"removed {sweep_cgroups()} replica cgroup(s)")
    mounts = sweep_data_mounts()
    if mounts:
        print(f"unmounted {mounts} data folder tmpfs(es) of stressbeds that are gone")
    if args.kubernetes:  # asked for: a cluster that cannot be reached is exit 2
        _sweep_cluster(args)
    try:
        docker = _docker()
    except ConfigError as exc:  # not a Docker user: nothing of theirs to sweep there
        _say(f"the Docker engine's leftovers are not swept: {exc}")
        return 0
    client = docker.connect()
    removed = docker.sweep(client, everything=args.all, say=_say)
    print(f"removed {removed} object(s)")
    return 0


def _sweep_cluster(args: argparse.Namespace) -> None:
    """The neighbours' namespaces whose run's namespace is gone (``--all``: every one)."""
    from ..backends import kubernetes  # noqa: PLC0415 - its preflight says a missing extra

    options = kubernetes.KubernetesOptions(kubeconfig=args.kubeconfig, context=args.context)
    access = kubernetes.preflight(options, engine=False)
    try:
        api = kubernetes.kubernetes_api(access)
        deleted = kubernetes.sweep_neighbours(api, everything=args.all, say=_say)
    except Exception as exc:  # the API server refused the listing, or did not answer
        raise ConfigError(
            "stressbed gc --kubernetes",
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            "a cluster that answers, and the right to list namespaces",
        ) from None
    print(
        f"deleted {len(deleted)} neighbour namespace(s)"
        + (": " + ", ".join(deleted) if deleted else "")
    )
