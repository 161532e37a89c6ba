import { createHmac, timingSafeEqual } from 'node:crypto';
import { REPLAY_WINDOW_SECONDS, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './constants';

type Headers = Record<string, string | string[] | undefined>; // Node lower-cases header names

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export type Verdict = 'ok' | 'unsigned' | 'stale' | 'bad-signature' | 'replayed';

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
 * Verifies `X-Channelmodel-Signature: sha256=<hex>` = HMAC-SHA256(secret, `<timestamp>.<raw body>`),
 * refuses timestamps outside the operator's 300 s window and, within it, a signature seen before
 * (a replay). Constant-time comparison; the secret is never logged.
 */
export class WebhookVerifier {
  private readonly seen = new Map<string, number>(); // signature -> timestamp

  constructor(private readonly secret: string | Buffer, private readonly nowSeconds: () => number = () => Date.now() / 1000) {}

  verify(rawBody: Buffer, headers: Headers): Verdict {
    const timestamp = header(headers, TIMESTAMP_HEADER);
    const signature = header(headers, SIGNATURE_HEADER);
    if (!timestamp || !signature) return 'unsigned';
    if (!/^\d{1,12}$/.test(timestamp)) return 'bad-signature';
    const now = Math.floor(this.nowSeconds());
    if (Math.abs(now - Number(timestamp)) > REPLAY_WINDOW_SECONDS) return 'stale';
    const expected = Buffer.from(
      'sha256=' + createHmac('sha256', this.secret).update(`${timestamp}.`).update(rawBody).digest('hex'),
    );
    const received = Buffer.from(signature);
    if (expected.length !== received.length || !timingSafeEqual(expected, received)) return 'bad-signature';
    this.forgetOlderThan(now - REPLAY_WINDOW_SECONDS);
    if (this.seen.has(signature)) return 'replayed';
    this.seen.set(signature, Number(timestamp));
    return 'ok';
  }

  private forgetOlderThan(limit: number): void {
    for (const [signature, timestamp] of this.seen) {
      if (timestamp < limit) this.seen.delete(signature);
    }
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
