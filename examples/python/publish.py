#!/usr/bin/env python3
"""Publish cost events to spendgate from Python with nats-py (pip install nats-py).

One JSON event per paid API call on costs.events.<service>, with the header
Nats-Msg-Id set to the event_id so JetStream drops a retry of the same call.
Events are published concurrently and every acknowledgement is awaited.

    python3 publish.py                     # 10 demo events to nats://127.0.0.1:4222
    python3 publish.py --count 1000 --url nats://nats.internal:4222 --creds svc.creds

Copy cost_event() and publish() into a service and call publish() right after
each paid call.
"""

import argparse
import asyncio
import json
import os
import secrets
from datetime import datetime, timezone
from decimal import Decimal

import nats
import nats.errors
import nats.js.errors


def cost_event(event_id, service, operation, cost_usd, units=None, unit=None, attributes=None, ts=None):
    """A cost event as schemas/cost_event.schema.json describes it.

    cost_usd is a Decimal or a decimal string, sent as a string ("0.0125"):
    it never goes through a float, and has at most 9 fractional digits.
    """
    ev = {
        "event_id": event_id,  # unique per real call: the idempotency key
        "ts": (ts or datetime.now(timezone.utc)).isoformat(timespec="microseconds"),
        "service": service,  # ^[a-z0-9][a-z0-9_.-]{0,63}$
        "operation": operation,
        "cost_usd": format(Decimal(cost_usd), "f"),  # never exponent notation
    }
    if units is not None:
        ev["units"] = int(units)
    if unit:
        ev["unit"] = unit
    if attributes:
        ev["attributes"] = {str(k): str(v) for k, v in attributes.items()}
    return ev


async def publish(js, events, concurrency=256, attempts=5):
    """Publish events concurrently; return (stored, duplicates).

    A failed publish is sent again with the same Nats-Msg-Id, so JetStream
    stores it at most once.
    """
    limit = asyncio.Semaphore(concurrency)

    async def one(ev):
        payload = json.dumps(ev, separators=(",", ":")).encode()
        headers = {"Nats-Msg-Id": ev["event_id"]}
        async with limit:
            for attempt in range(1, attempts + 1):
                try:
                    return await js.publish(f"costs.events.{ev['service']}", payload, headers=headers, timeout=5)
                except (nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError):
                    if attempt == attempts:
                        raise
                    await asyncio.sleep(0.25 * attempt)

    acks = await asyncio.gather(*(one(ev) for ev in events))
    duplicates = sum(1 for ack in acks if ack.duplicate)
    return len(acks) - duplicates, duplicates


DEMO = [
    ("openai", "chat_completion", "tokens", 1250, "0.0125", {"model": "gpt-4o"}),
    ("anthropic", "messages", "tokens", 2000, "0.018", {"model": "claude-sonnet"}),
    ("sendgrid", "send_email", "emails", 1, "0.001", {}),
    ("twilio", "sms", "messages", 1, "0.0079", {"country": "US"}),
    ("aws", "s3_put", "requests", 1000, "0.005", {}),
]


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
                   help="NATS server URL(s), comma-separated ($NATS_URL)")
    p.add_argument("--creds", default=os.environ.get("NATS_CREDS"), help="NATS credentials file ($NATS_CREDS)")
    p.add_argument("--count", type=int, default=10, help="demo events to publish")
    p.add_argument("--id-prefix", default=secrets.token_hex(6) + "-",
                   help="event_id prefix (default: random); the same prefix again publishes duplicates")
    args = p.parse_args()

    connect = {"servers": args.url.split(","), "name": "spendgate-example-publisher"}
    if args.creds:
        connect["user_credentials"] = args.creds
    nc = await nats.connect(**connect)
    try:
        js = nc.jetstream()
        events, total = [], Decimal(0)
        for i in range(args.count):
            service, operation, unit, units, cost, attrs = DEMO[i % len(DEMO)]
            events.append(cost_event(f"{args.id_prefix}{i + 1}", service, operation, cost, units, unit,
                                     {"business_id": "b-42", **attrs}))
            total += Decimal(cost)
        stored, duplicates = await publish(js, events)
        print(f"published {len(events)} events totalling {total:f} USD: {stored} stored, {duplicates} duplicates")
    finally:
        await nc.drain()


if __name__ == "__main__":
    asyncio.run(main())
