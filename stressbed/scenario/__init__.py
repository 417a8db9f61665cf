"""The scenario: what a user declares, and its rendering to a k6 bundle. Pure: no processes,
no threads, no network.

It owns the DSL (``model``: Scenario and Workload; ``flow``, ``http``, ``check``, ``extract``,
``gen``, ``values``, ``templates``, ``_jsonpath``; ``load_profiles``: one class per k6
executor; ``thresholds``; ``capacity``: a capacity search's SLOs, rates and budget; ``units``: k6
durations, rates and percents), the ``catalog`` of
scenario modules, ``render`` (scenario -> entry script + config.json + runtime), and the JS
``runtime/`` the bundle runs. It imports only :mod:`stressbed.errors`; every layer above may
import it.
"""
