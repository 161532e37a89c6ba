// Verify webhook deliveries with the official `standardwebhooks` npm package, as a
// TypeScript/JavaScript receiver does (docs/integration.md).
// Usage: node verify.js deliveries.json
// deliveries.json: [{"key": "<whsec_... or base64>", "raw": false, "body": "...", "headers": {...}}]
// Prints one JSON line per delivery: {"ok": true, "type": ...} or {"ok": false, "error": ...}.
'use strict';
const fs = require('node:fs');
const { Webhook } = require('standardwebhooks');

for (const delivery of JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))) {
  const key = delivery.raw ? new TextEncoder().encode(delivery.key) : delivery.key;
  const webhook = new Webhook(key, delivery.raw ? { format: 'raw' } : undefined);
  try {
    const event = webhook.verify(delivery.body, delivery.headers);
    console.log(JSON.stringify({ ok: true, type: event.type }));
  } catch (error) {
    console.log(JSON.stringify({ ok: false, error: String(error.message || error) }));
  }
}
