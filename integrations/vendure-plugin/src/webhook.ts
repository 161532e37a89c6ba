import { Webhook } from 'standardwebhooks';
import { REPLAY_WINDOW_SECONDS } from './constants';

type Headers = Record<string, string | string[] | undefined>; // Node lower-cases header names

export type Verdict = 'ok' | 'duplicate' | 'unsigned' | 'stale' | 'bad-signature' | 'replayed';

/** The operator's event payload (docs/integration.md, "Webhook notifications"). */
export interface ChannelModelEvent {
  type: string;
  channelId: string;
  namespace: string;
  name: string;
  message: string;
  at: string;
  modelVersion: string | null;
  modelBaseUrl: string | null;
  version?: string | null;
  trigger?: string;
  metrics?: Record<string, number | null> | null;
  error?: string | null;
}

/**
 * The receiver's keys, read like the operator reads `spec.notify.secretRef`: one or more
 * `whsec_<base64>` separated by whitespace (rotation), else the whole value as one raw key.
 */
export function webhookKeys(secret: string | Buffer): Webhook[] {
  const text = Buffer.isBuffer(secret) ? secret.toString('utf8') : secret;
  const tokens = text.split(/\s+/).filter(Boolean);
  if (tokens.length > 0 && tokens.every((token) => token.startsWith('whsec_'))) return tokens.map((token) => new Webhook(token));
  return [new Webhook(Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8'), { format: 'raw' })];
}

interface Seen {
  signature: string;
  handledAt: number;
}

/**
 * Verifies the operator's Standard Webhooks (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature`) with the official `standardwebhooks` library: HMAC-SHA256 over
 * `<id>.<timestamp>.<raw body>`, any active key, timestamps within 300 s.
 *
 * The id is the same on every retry of an event: an id already handled is a `duplicate`
 * (acknowledge, do not apply again); the very same signed request again is a `replayed`
 * request (refused). Ids are remembered once handled (`handled()`), for an hour.
 */
export class WebhookVerifier {
  private readonly keys: Webhook[];
  private readonly seen = new Map<string, Seen>();

  constructor(secret: string | Buffer, private readonly nowSeconds: () => number = () => Date.now() / 1000) {
    this.keys = webhookKeys(secret);
  }

  verify(rawBody: Buffer, headers: Headers): Verdict {
    const flat: Record<string, string> = {};
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const value = headers[name];
      const first = Array.isArray(value) ? value[0] : value;
      if (!first) return 'unsigned';
      flat[name] = first;
    }
    const timestamp = Number(flat['webhook-timestamp']);
    if (!/^\d{1,12}$/.test(flat['webhook-timestamp'])) return 'bad-signature';
    if (Math.abs(this.nowSeconds() - timestamp) > REPLAY_WINDOW_SECONDS) return 'stale';
    const valid = this.keys.some((key) => {
      try {
        key.verify(rawBody, flat);
        return true;
      } catch {
        return false; // no signature made with this key (or the library's own clock check)
      }
    });
    if (!valid) return 'bad-signature';
    const before = this.seen.get(flat['webhook-id']);
    if (before) return before.signature === flat['webhook-signature'] ? 'replayed' : 'duplicate';
    return 'ok';
  }

  /** Remember an event as handled: its retries become duplicates, the same request a replay. */
  handled(headers: Headers): void {
    const id = headers['webhook-id'];
    const signature = headers['webhook-signature'];
    if (typeof id !== 'string' || typeof signature !== 'string') return;
    const now = this.nowSeconds();
    for (const [key, entry] of this.seen) if (now - entry.handledAt > 3600) this.seen.delete(key);
    if (this.seen.size >= 10000) this.seen.delete(this.seen.keys().next().value as string);
    this.seen.set(id, { signature, handledAt: now });
  }
}

/** Parses a verified body; undefined when it is not an operator event. */
export function parseEvent(rawBody: Buffer): ChannelModelEvent | undefined {
  try {
    const value = JSON.parse(rawBody.toString('utf8')) as Partial<ChannelModelEvent>;
    if (typeof value.type !== 'string' || typeof value.channelId !== 'string' || typeof value.at !== 'string') {
      return undefined;
    }
    return value as ChannelModelEvent;
  } catch {
    return undefined;
  }
}
