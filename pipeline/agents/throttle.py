"""Throttle agent: ``sms.routed`` → ``sms.throttled`` at each route's configured rate.

Walking-skeleton limiter: one token bucket per route, counted in message parts, refilled at the
route's ``tps``. Over the limit the message waits (it is never dropped) and its offset is not
committed until it has been passed on, so a crash while waiting loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import faust
from pydantic import ValidationError

from pipeline.app import (
    app,
    rejected_topic,
    routed_topic,
    throttled_topic,
    throttled_topic_name,
)
from pipeline.decoding import decode
from pipeline.rejections import reject
from pipeline.runtime import config_watcher
from schemas.codec import DecodeError
from schemas.models import RoutedMessage
from smsflow.domain.ratelimit import TokenBucket, acquire, retune

STAGE = "throttle"
BURST_SECONDS = 1.0  # a route may burst one second's worth of parts


@app.agent(routed_topic)
async def throttle(stream: faust.StreamT[bytes]) -> None:
    buckets: dict[str, TokenBucket] = {}
    async for event in stream.events():
        snapshot = await config_watcher.wait_ready()
        try:
            routed = await decode(RoutedMessage, event.value)
        except DecodeError as exc:
            await reject(event, rejected_topic, stage=STAGE, reason_code=exc.reason_code,
                         detail=str(exc))
            continue
        except ValidationError as exc:
            await reject(event, rejected_topic, stage=STAGE, reason_code="INVALID_RECORD",
                         detail=str(exc).splitlines()[0])
            continue
        route = snapshot.config.route(routed.route_id)
        now = time.monotonic()
        if route is not None:
            bucket = buckets.get(route.id)
            burst = max(route.tps * BURST_SECONDS, float(routed.parts))
            if bucket is None:
                bucket = TokenBucket.full(route.tps, burst, now)
            elif bucket.rate != route.tps:
                bucket = retune(bucket, route.tps, burst)
            bucket, wait_s = acquire(bucket, routed.parts, now)
            buckets[route.id] = bucket
            if wait_s > 0:
                await asyncio.sleep(wait_s)
        # A route removed from config after routing is still delivered: the router's decision
        # stands, and the sender owns the SMSC connection.
        released = routed.model_copy(update={"throttled_at": datetime.now(UTC)})
        await throttled_topic.send(key=event.key, value=released.to_avro(throttled_topic_name))
