"""Escalation: tip reports, routing, the review API, reliable signed delivery, audit and statistics.

See ``escalation/README.md``.
"""
