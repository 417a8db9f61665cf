"""The reconnect storm of ``reconnect_storm`` with agents that back off without jitter: every
one retries at the same instants, and they come back in one wave.

    stressbed run --scenario reconnect_storm_unjittered
"""

from __future__ import annotations

from .reconnect_storm import stack, storm

__all__ = ["scenario", "stack"]

scenario = storm("none", "reconnect_storm_unjittered")
