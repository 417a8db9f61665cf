"""The reference agent service: stressbed's default target.

It ingests metric reports into a bounded queue, keeps a heartbeat registry, runs allow-listed
tasks, and stays honest under overload (429 with Retry-After, readiness off above a high
watermark, graceful drain on SIGTERM). Start it with ``stressbed-agent --port 8080``.
"""

__version__ = "0.1.0"
