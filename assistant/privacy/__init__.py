"""Privacy by design: PII redaction, consent records, retention and rights requests.

See ``docs/privacy.md`` for the data map, the threat model and the incident runbook.
"""
