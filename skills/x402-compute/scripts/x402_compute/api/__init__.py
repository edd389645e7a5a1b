"""The compute API: ``client`` (``ComputeClient``, one method per endpoint, and ``drive``, which
runs a payment flow), ``auth`` (who signs a request) and ``http`` (the bounded transport)."""
