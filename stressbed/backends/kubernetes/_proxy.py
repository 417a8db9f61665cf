"""Whether the API server's pod proxy reaches the agent pods: the target's metrics are scraped
through it and its fault hook called through it. On a CNI that enforces the agent's
NetworkPolicy the proxy is held back like any client unless the control plane's addresses are
admitted (``control_plane_cidrs``); without this check the metrics charts would stay empty and
every ``dependency`` fault be skipped with nothing said why. Said once a run, as a
``proxy-refused`` warning that names the fix."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

__all__ = ["GRACE_S", "ProxyCheck"]

#: A pod the proxy has never reached for this long is said (one just started may refuse its
#: first connections while it comes up).
GRACE_S = 10.0


class ProxyCheck:
    """The proxy's record of each agent pod: reached at least once, or failing since when."""

    def __init__(
        self,
        event: Callable[..., None],
        cidrs: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._event = event
        self.cidrs = tuple(cidrs)
        self._clock = clock
        self._lock = threading.Lock()
        self._reached: set[str] = set()
        self._failing: dict[str, float] = {}  # pod -> when it first failed
        self.said = False

    def reached(self, pod: str) -> None:
        with self._lock:
            self._reached.add(pod)
            self._failing.pop(pod, None)

    def refused(self, pod: str, port: int, reason: str, *, at_once: bool = False) -> None:
        """The proxy did not reach ``pod``: said when it never has for GRACE_S (``at_once``:
        now, for a one-off call such as a fault hook's)."""
        with self._lock:
            if self.said or pod in self._reached:
                return
            first = self._failing.setdefault(pod, self._clock())
            if not at_once and self._clock() - first < GRACE_S:
                return
            self.said = True
        self._event("proxy-refused", pod=pod, port=port, reason=reason, fix=self.fix())

    def fix(self) -> str:
        """What to do about it, naming the option."""
        if not self.cidrs:
            return (
                "where the CNI enforces NetworkPolicy, the agent's admits the API server only "
                "from --control-plane-cidrs (control_plane_cidrs in stressbed.yaml, "
                "stressbed:controlPlaneCidrs for infra/), which is not set: set it to the "
                "addresses the API server's requests to pods come from (the control-plane "
                "nodes' IPs; a managed cluster's control-plane range)"
            )
        return (
            f"--control-plane-cidrs is {','.join(self.cidrs)}: it must hold the address the "
            "API server's requests to this pod come from (on flannel and k3s, also each "
            "node's flannel.1 address)"
        )
