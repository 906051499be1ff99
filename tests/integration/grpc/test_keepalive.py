"""Keepalive pings of an idle connection are accepted by a real gRPC server of ours."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from coditect.api.server import channel_options

_KEEPALIVE_MS = 500


async def test_an_idle_stream_survives_the_peers_keepalive_pings() -> None:
    # gRPC's server default expects at most one ping every 5 minutes on a connection without
    # data and closes it (GOAWAY "too_many_pings") at the third early one: a long idle watch
    # (a mission whose tasks take minutes) was cut. Our server options accept our pings.
    server = grpc.aio.server(options=channel_options(1 << 20, keepalive_ms=_KEEPALIVE_MS))
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    # The client pings without limit while no data flows (its default stops after two).
    client = [
        *channel_options(1 << 20, keepalive_ms=_KEEPALIVE_MS),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=client) as channel:
            call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            first = await call.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(TimeoutError):  # still open, nothing to say: no GOAWAY
                async with asyncio.timeout(8 * _KEEPALIVE_MS / 1000):
                    await call.read()
            call.cancel()
    finally:
        await server.stop(0)
