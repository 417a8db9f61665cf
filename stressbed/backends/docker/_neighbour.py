"""The ``neighbour`` fault on the Docker backend: one container of its own on the same engine,
beside the replicas' containers and never in their cgroups, running the local neighbour's hogs.

What it runs is the local backend's (:func:`~stressbed.backends.local.neighbour_work`: CPU
burners, a memory holder, an IO writer, each ``python -m`` the local hogs' module), started
in the background by a ``sh -c`` and waited for. The image is the runner image: it has
Python and this checkout's stressbed (so the same hogs as the local neighbour's), the run's
fleet ensures it anyway (found by its hash: a run builds nothing more for its neighbour), and
the replicas' image is the target's, which may have neither. The container has no CPU or
memory limit (a noisy neighbour is unbounded; its ``cpu_shares`` are the engine's default) and
no network (``none``: it talks to nobody), and the rest of a runner's security: a non-root
user, a read-only root, a tmpfs ``/tmp``, every capability dropped, ``no-new-privileges``.
With ``io`` its IO writer's file is in a fresh directory beside the stack's data folder,
bind-mounted at :data:`SCRATCH`: on the same disk as the replicas' writable path. It is
labelled and registered as the run's other containers are, so teardown and ``stressbed gc``
remove it even when stressbed was killed.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import threading
from pathlib import Path
from typing import Any

from ...scenario.faults import Fault
from ..local import Neighbour, neighbour_work
from ._container import TMPFS_SIZE
from ._engine import FAILURES, Registry, writable_by

__all__ = ["SCRATCH", "ContainerNeighbour", "start_neighbour"]

#: Where the neighbour's IO writer writes, in its container (a directory of the host).
SCRATCH = "/scratch"
#: The runner image's user (``runner/Dockerfile``), which the neighbour runs as.
USER = 10001
#: How long removing the neighbour's container may take when it stops; what is left then is
#: the run's teardown's to remove (the container stays in the run's registry).
STOP_TIMEOUT_S = 20.0
#: What runs one hog, as the local neighbour's ``_hog.spawn`` runs it (the module's name, not
#: an import: it runs in the image).
HOG = ("python", "-m", "stressbed.backends.local._hog")


class ContainerNeighbour(Neighbour):
    """The neighbour's container (:attr:`name`, in the run's registry) and its scratch
    directory (None: no IO writer), both removed by :meth:`stop`."""

    def __init__(self, registry: Registry, name: str, scratch: Path | None, how: str) -> None:
        self.registry = registry
        self.name = name
        self.scratch = scratch
        self.how = how

    def stop(self) -> None:
        """The container removed (killed first), waited for at most :data:`STOP_TIMEOUT_S`,
        then the scratch directory."""
        remover = threading.Thread(target=self._remove, name=f"{self.name}-remove", daemon=True)
        remover.start()
        remover.join(timeout=STOP_TIMEOUT_S)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def _remove(self) -> None:
        with contextlib.suppress(*FAILURES):  # what is left, the teardown's sweep removes
            self.registry.remove_container(self.name)


def script(work: list[tuple[str, str]]) -> str:
    """The container's ``sh -c``: every hog in the background, then a wait for them all."""
    hogs = [shlex.join([*HOG, kind, amount]) for kind, amount in work]
    return " & ".join(hogs) + " & wait"


def host_config(client: Any, scratch: Path | None) -> Any:
    """The neighbour's host config: no CPU or memory limit, no network, a runner's security."""
    return client.api.create_host_config(
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMPFS_SIZE}"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        init=True,  # the hogs reaped, signals passed on
        binds={str(scratch): {"bind": SCRATCH, "mode": "rw"}} if scratch is not None else None,
        network_mode="none",
    )


def start_neighbour(registry: Registry, image: str, fault: Fault, work_dir: Path) -> Neighbour:
    """Start ``fault``'s neighbour as a container of ``image`` beside the replicas of the
    stack in ``work_dir``; OSError with the engine's reason where it does not start (and
    nothing of it is left)."""
    work, said = neighbour_work(fault, f"{SCRATCH}/io")
    name = registry.container(registry.name(f"neighbour-{fault.name}"))
    scratch = None
    if fault.param("io"):
        scratch = (work_dir / f".stressbed-{fault.name}").resolve()
        shutil.rmtree(scratch, ignore_errors=True)  # fresh: nothing of an earlier run's
    neighbour = ContainerNeighbour(
        registry, name, scratch, f"a container of its own on the same engine ({name}): {said}"
    )
    client = registry.client
    try:
        if scratch is not None:
            scratch.mkdir(parents=True)
            writable_by(scratch, USER)
        created = client.api.create_container(
            image,
            command=["sh", "-c", script(work)],
            user=f"{USER}:{USER}",
            labels=registry.labels("neighbour") | {"stressbed.fault": fault.name},
            host_config=host_config(client, scratch),
            name=name,
        )
        client.api.start(created["Id"])
        state = client.api.inspect_container(created["Id"])["State"]
        if not state.get("Running"):
            last = client.api.logs(created["Id"], tail=1).decode(errors="replace").strip()
            raise OSError(
                f"it ended at once (exit {state.get('ExitCode')})"
                + (f": {last[:200]}" if last else "")
            )
    except (*FAILURES, OSError) as exc:
        neighbour.stop()
        reason = getattr(exc, "explanation", None) or exc  # the engine's own words
        raise OSError(f"the engine did not start {name}: {reason}") from None
    return neighbour
