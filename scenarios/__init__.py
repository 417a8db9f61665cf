"""Reusable scenarios for stressbed. Import, compose and copy them.

Each public module defines ``scenario``; ``stressbed scenarios`` lists them. The requests of the
reference agent's API live in :mod:`scenarios.agent_api`, so scenarios compose from one place.
"""
