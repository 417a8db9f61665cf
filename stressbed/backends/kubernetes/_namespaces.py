"""The part of the cluster seam that reaches outside the run's namespace: namespaces (read,
created and deleted: a ``neighbour`` fault's own, :mod:`._neighbour`) and the Jobs made in
them, and the sweep of neighbours' namespaces a run left behind.

:class:`NamespaceApi` is what :class:`~._cluster.ClusterApi` adds for them (the tests fake it
with the rest); :class:`NamespaceCalls` is the real one, on the official client, a part of
:func:`~._cluster.kubernetes_api`. A neighbour's namespace is owned by the run's namespace
(an ``ownerReference``), so the cluster's garbage collector deletes it once the run's
namespace is gone, whoever deleted that (the run's destroy, ``pulumi destroy`` after a
stressbed that was killed, ``kubectl``); :func:`sweep_neighbours` deletes those whose run's
namespace is gone or going, for a cluster whose garbage collector has not (yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "NEIGHBOUR_SELECTOR",
    "NamespaceApi",
    "NamespaceCalls",
    "NamespaceState",
    "sweep_neighbours",
]

#: The labels every neighbour's namespace carries (:func:`._neighbour.neighbour_namespace`).
NEIGHBOUR_SELECTOR = "app.kubernetes.io/part-of=stressbed,app.kubernetes.io/component=neighbour"


@dataclass(frozen=True)
class NamespaceState:
    """What is read of one namespace."""

    name: str
    uid: str
    phase: str  # Active, Terminating
    owner: str = ""  # the namespace that owns it (ownerReferences), if one does


class NamespaceApi(Protocol):
    def namespace(self, name: str) -> NamespaceState | None:
        """Namespace ``name`` as the API server has it; None once gone."""
        ...

    def namespaces(self, label_selector: str) -> list[NamespaceState]:
        """The namespaces with these labels."""
        ...

    def create_namespace(self, body: dict[str, Any]) -> None:
        """Create a namespace from its manifest."""
        ...

    def delete_namespace(self, name: str) -> None:
        """Delete it (everything in it first); gone, or going already, is fine."""
        ...

    def create_job(self, namespace: str, body: dict[str, Any]) -> None:
        """Create a Job (a fault's neighbour) from its manifest; it goes with its namespace."""
        ...


class NamespaceCalls:
    """:class:`NamespaceApi` on the official client's APIs (set by the class it is part of)."""

    core: Any  # CoreV1Api
    batch: Any  # BatchV1Api

    def namespace(self, name: str) -> NamespaceState | None:
        try:
            found = self.core.read_namespace(name)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        return _namespace_state(found)

    def namespaces(self, label_selector: str) -> list[NamespaceState]:
        found = self.core.list_namespace(label_selector=label_selector)
        return [_namespace_state(item) for item in found.items]

    def create_namespace(self, body: dict[str, Any]) -> None:
        # Strict: a field the API server does not know is an error, not silently pruned.
        self.core.create_namespace(body, field_validation="Strict")

    def delete_namespace(self, name: str) -> None:
        try:
            self.core.delete_namespace(name)
        except Exception as exc:
            # 404: gone; 409: being deleted already (its content still going).
            if getattr(exc, "status", None) not in (404, 409):
                raise

    def create_job(self, namespace: str, body: dict[str, Any]) -> None:
        self.batch.create_namespaced_job(namespace, body, field_validation="Strict")


def _namespace_state(item: Any) -> NamespaceState:
    owners = [
        ref.name
        for ref in item.metadata.owner_references or []
        if ref.kind == "Namespace" and ref.api_version == "v1"
    ]
    phase = item.status.phase if item.status is not None else None
    return NamespaceState(
        item.metadata.name, item.metadata.uid or "", phase or "Active", owners[0] if owners else ""
    )


def sweep_neighbours(
    api: NamespaceApi, *, everything: bool = False, say: Callable[[str], None] | None = None
) -> list[str]:
    """Delete the neighbours' namespaces whose run's namespace is gone or being deleted
    (``everything``: every one, of live runs too); their names."""
    deleted = []
    for found in api.namespaces(NEIGHBOUR_SELECTOR):
        if found.phase == "Terminating":
            continue  # going already
        owner = api.namespace(found.owner) if found.owner else None
        if not everything and owner is not None and owner.phase != "Terminating":
            continue  # its run is still there
        try:
            api.delete_namespace(found.name)
        except Exception as exc:  # one that will not go holds up no other
            if say is not None:
                say(f"namespace {found.name} was not deleted: {exc}")
            continue
        deleted.append(found.name)
    return deleted
