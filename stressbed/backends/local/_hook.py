"""A replica's own fault hook (the StackSpec's ``fault_hook``: the reference agent's
``/admin/faults``), called with the run's token: the ``dependency`` fault's way in."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from ...stack.spec import FaultHook

__all__ = ["HOOK_TIMEOUT_S", "Hook"]

#: A call to a replica's fault hook waits at most this long (the controller thread makes it).
HOOK_TIMEOUT_S = 1.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Hook:
    """Where the replicas' fault hook answers, as the spec declares it, and the run's token."""

    spec: FaultHook
    token: str = field(repr=False)

    def call(
        self, address: tuple[str, int], method: str, path: str, body: object = None
    ) -> str | None:
        """None when the hook at ``address`` (host, port) took it; else why not, in a few
        words."""
        host, port = address
        host = f"[{host}]" if ":" in host else host
        request = urllib.request.Request(
            f"http://{host}:{port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers=self.spec.headers(self.token),
        )
        try:
            with _OPENER.open(request, timeout=HOOK_TIMEOUT_S):
                return None
        except urllib.error.HTTPError as exc:  # the hook refused it
            exc.close()
            return f"HTTP {exc.code}"
        except (OSError, http.client.HTTPException) as exc:
            return f"{type(exc).__name__}: {exc}"
