"""The reference agent service: stressbed's default target.

It ingests metric reports into a bounded queue, keeps a heartbeat registry, runs allow-listed
tasks, keeps a WebSocket channel per agent (``channel``, with sessions any replica verifies:
``registry``), and stays honest under overload (429 with Retry-After, readiness off above a
high watermark, 503 past its channel limit, graceful drain on SIGTERM). Start it with
``stressbed-agent --port 8080``.
"""

__version__ = "0.1.0"
