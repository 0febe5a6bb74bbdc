"""The tenant HTTP API: a second front door to ``sms.submitted`` (docs/api.md).

An adapter layer like ``connectors/``: it authenticates tenants with API keys, applies the same
content rules as the router, admits traffic at the tenant's API rate and produces
``SubmitRequest`` records, answering only after Kafka stored them.
"""
