"""Distributed mode: orchestrator and task queue services, workers, and repository transport.

The layers' code is the one-process code; only the transport (gRPC, NATS JetStream) and the
backends (Redis, PostgreSQL) change. See docs/distributed.md.
"""
