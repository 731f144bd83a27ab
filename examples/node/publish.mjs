#!/usr/bin/env node
// Publish cost events to spendgate from Node.js with nats.js (npm install nats).
//
// One JSON event per paid API call on costs.events.<service>, with the header
// Nats-Msg-Id set to the event_id (the msgID option) so JetStream drops a
// retry of the same call. Events are published concurrently and every
// acknowledgement is awaited.
//
//   node publish.mjs                       # 10 demo events to nats://127.0.0.1:4222
//   node publish.mjs --count 1000 --url nats://nats.internal:4222 --creds svc.creds
//
// Copy costEvent() and publish() into a service and call publish() right
// after each paid call.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { connect, credsAuthenticator } from "nats";

// A cost event as schemas/cost_event.schema.json describes it. costUSD is a
// decimal string ("0.0125"), at most 9 fractional digits: a JavaScript number
// is a float, so money never travels as one.
export function costEvent({ eventId, service, operation, costUSD, units, unit, attributes, ts }) {
  if (typeof costUSD !== "string" || !/^\d{1,9}(\.\d{1,9})?$/.test(costUSD)) {
    throw new TypeError(`costUSD must be a decimal string, got ${costUSD}`);
  }
  const ev = {
    event_id: eventId, // unique per real call: the idempotency key
    ts: (ts ?? new Date()).toISOString(),
    service, // ^[a-z0-9][a-z0-9_.-]{0,63}$
    operation,
    cost_usd: costUSD,
  };
  if (units !== undefined) ev.units = units;
  if (unit) ev.unit = unit;
  if (attributes && Object.keys(attributes).length > 0) ev.attributes = attributes;
  return ev;
}

// publish sends every event and waits for each acknowledgement; a failed
// publish is sent again with the same Nats-Msg-Id, so it is stored at most
// once. It returns how many were stored and how many JetStream dropped as
// duplicates.
export async function publish(js, events, { attempts = 5 } = {}) {
  const enc = new TextEncoder();
  const one = async (ev) => {
    const data = enc.encode(JSON.stringify(ev));
    for (let attempt = 1; ; attempt++) {
      try {
        return await js.publish(`costs.events.${ev.service}`, data, { msgID: ev.event_id, timeout: 5000 });
      } catch (err) {
        if (attempt >= attempts) throw err;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  };
  const acks = await Promise.all(events.map(one));
  const duplicates = acks.filter((a) => a.duplicate).length;
  return { stored: acks.length - duplicates, duplicates };
}

const DEMO = [
  ["openai", "chat_completion", "tokens", 1250, 12500, { model: "gpt-4o" }],
  ["anthropic", "messages", "tokens", 2000, 18000, { model: "claude-sonnet" }],
  ["sendgrid", "send_email", "emails", 1, 1000, {}],
  ["twilio", "sms", "messages", 1, 7900, { country: "US" }],
  ["aws", "s3_put", "requests", 1000, 5000, {}],
];

// micros formats millionths of a dollar (an integer, exact) as a decimal string.
const micros = (n) => `${Math.floor(n / 1e6)}.${String(n % 1e6).padStart(6, "0")}`;

async function main() {
  const { values } = parseArgs({
    options: {
      url: { type: "string", default: process.env.NATS_URL ?? "nats://127.0.0.1:4222" },
      creds: { type: "string", default: process.env.NATS_CREDS ?? "" },
      count: { type: "string", default: "10" },
      "id-prefix": { type: "string", default: randomBytes(6).toString("hex") + "-" },
    },
  });
  const count = Number.parseInt(values.count, 10);
  if (!Number.isInteger(count) || count < 0) throw new Error("--count must be an integer >= 0");

  const opts = { servers: values.url.split(","), name: "spendgate-example-publisher" };
  if (values.creds) opts.authenticator = credsAuthenticator(readFileSync(values.creds));
  const nc = await connect(opts);
  try {
    const js = nc.jetstream();
    const events = [];
    let total = 0;
    for (let i = 0; i < count; i++) {
      const [service, operation, unit, units, cost, attrs] = DEMO[i % DEMO.length];
      events.push(costEvent({
        eventId: `${values["id-prefix"]}${i + 1}`, service, operation, costUSD: micros(cost), units, unit,
        attributes: { business_id: "b-42", ...attrs },
      }));
      total += cost;
    }
    const { stored, duplicates } = await publish(js, events);
    console.log(`published ${events.length} events totalling ${micros(total)} USD: ${stored} stored, ${duplicates} duplicates`);
  } finally {
    await nc.drain();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(`publisher: ${err.message ?? err}`);
    process.exit(1);
  });
}
