"""Traces and metrics across the distributed services (see docs/observability.md).

* :mod:`coditect.telemetry.tracing`: OpenTelemetry set-up, spans, and W3C ``traceparent``
  propagation through dict carriers (gRPC metadata, NATS headers);
* :mod:`coditect.telemetry.metrics`: the ``coditect_*`` Prometheus metrics and their HTTP
  endpoint (needs ``prometheus-client``, in the ``distributed`` extra);
* :mod:`coditect.telemetry.wrappers`: a model and a sandbox wrapper that count tokens, cost and
  sandbox runs, applied by the composition root.
"""
