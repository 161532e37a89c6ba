import { ChangeKind, INVENTORY_CHANGE, INVENTORY_CHANGED_AT, RETRAIN_REQUESTED_AT } from './constants';

/** Writes annotations on the ChannelModel of a channel; rejects with `{code: 404}` when there is none. */
export type AnnotationPatcher = (channelId: string, annotations: Record<string, string>) => Promise<void>;

export interface ReporterOptions {
  /** At most one patch per channel per this many ms (default 1000). */
  intervalMs?: number;
  /** Longest wait between retries of a failed patch (default 30000). */
  maxRetryDelayMs?: number;
  /** Told about each failed attempt (the change stays queued). */
  onError?: (channelId: string, error: unknown, retryInMs: number | undefined) => void;
  now?: () => number;
}

interface Pending {
  changedAt?: string; // RFC 3339 time of the latest change
  kind?: ChangeKind; // the kind of that latest change
  retrainAt?: string;
}

/**
 * Coalesces catalog changes per channel into at most one merge patch per interval, and keeps
 * them until the Kubernetes API took them: a failed patch is retried with exponential backoff
 * (a newer change replaces the queued one, it never loses it). The operator then debounces:
 * training starts `debounceSeconds` after the latest change time it saw.
 *
 * Coalescing keeps the latest change's time and kind, which is what the operator would have
 * acted on had every change been sent (only the latest value of each annotation counts).
 */
export class ChangeReporter {
  private readonly pending = new Map<string, Pending>();
  private readonly lastPatch = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly failures = new Map<string, number>();
  private readonly intervalMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly now: () => number;
  private closed = false;
  /** Patches sent (successful or not): for tests and metrics. */
  attempts = 0;

  constructor(private readonly patch: AnnotationPatcher, private readonly options: ReporterOptions = {}) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 30000;
    this.now = options.now ?? Date.now;
  }

  /** A catalog change in a channel (call it after the transaction committed). */
  report(channelId: string, kind: ChangeKind, at: Date = new Date(this.now())): void {
    const entry = this.entry(channelId);
    const time = at.toISOString();
    if (!entry.changedAt || time >= entry.changedAt) {
      entry.changedAt = time;
      entry.kind = kind;
    }
    this.schedule(channelId);
  }

  /** The manual trigger, coalesced like changes (the Admin API sends it at once instead). */
  requestRetrain(channelId: string, at: Date = new Date(this.now())): void {
    const entry = this.entry(channelId);
    const time = at.toISOString();
    if (!entry.retrainAt || time > entry.retrainAt) entry.retrainAt = time;
    this.schedule(channelId);
  }

  /** Channels with changes not yet accepted by the API. */
  pendingChannels(): string[] {
    return [...this.pending.keys(), ...this.inFlight.keys()].filter((v, i, all) => all.indexOf(v) === i);
  }

  /** Send everything pending now, ignoring the interval (shutdown); one attempt each. */
  async flushAll(): Promise<void> {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.all([...this.inFlight.values()]);
    await Promise.all([...this.pending.keys()].map((id) => this.send(id)));
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private entry(channelId: string): Pending {
    let entry = this.pending.get(channelId);
    if (!entry) {
      entry = {};
      this.pending.set(channelId, entry);
    }
    return entry;
  }

  private schedule(channelId: string, delayMs?: number): void {
    if (this.closed || this.timers.has(channelId) || this.inFlight.has(channelId)) return;
    if (!this.pending.has(channelId)) return;
    const due = delayMs ?? Math.max(0, (this.lastPatch.get(channelId) ?? -Infinity) + this.intervalMs - this.now());
    const timer = setTimeout(() => {
      this.timers.delete(channelId);
      void this.send(channelId);
    }, due);
    timer.unref?.();
    this.timers.set(channelId, timer);
  }

  private send(channelId: string): Promise<void> {
    const entry = this.pending.get(channelId);
    if (!entry) return Promise.resolve();
    this.pending.delete(channelId);
    const annotations: Record<string, string> = {};
    if (entry.changedAt && entry.kind) {
      annotations[INVENTORY_CHANGED_AT] = entry.changedAt;
      annotations[INVENTORY_CHANGE] = entry.kind;
    }
    if (entry.retrainAt) annotations[RETRAIN_REQUESTED_AT] = entry.retrainAt;
    this.lastPatch.set(channelId, this.now());
    this.attempts += 1;
    const attempt = this.patch(channelId, annotations).then(
      () => {
        this.failures.delete(channelId);
        this.inFlight.delete(channelId);
        this.schedule(channelId);
      },
      (error: unknown) => {
        this.inFlight.delete(channelId);
        if ((error as { code?: unknown } | null)?.code === 404) {
          // No ChannelModel for this channel: nothing to tell, nothing to keep.
          this.failures.delete(channelId);
          this.options.onError?.(channelId, error, undefined);
          this.schedule(channelId);
          return;
        }
        this.requeue(channelId, entry);
        const failures = (this.failures.get(channelId) ?? 0) + 1;
        this.failures.set(channelId, failures);
        const retryIn = Math.min(this.maxRetryDelayMs, this.intervalMs * 2 ** (failures - 1));
        this.options.onError?.(channelId, error, retryIn);
        this.schedule(channelId, retryIn);
      },
    );
    this.inFlight.set(channelId, attempt);
    return attempt;
  }

  /** Put a failed patch's content back, unless newer changes replaced it meanwhile. */
  private requeue(channelId: string, failed: Pending): void {
    const entry = this.entry(channelId);
    if (failed.changedAt && failed.kind && (!entry.changedAt || failed.changedAt > entry.changedAt)) {
      entry.changedAt = failed.changedAt;
      entry.kind = failed.kind;
    }
    if (failed.retrainAt && (!entry.retrainAt || failed.retrainAt > entry.retrainAt)) entry.retrainAt = failed.retrainAt;
  }
}
