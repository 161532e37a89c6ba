import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bearerMatches } from '../src/auth';
import { ChangeReporter } from '../src/change-reporter';
import { INVENTORY_CHANGE, INVENTORY_CHANGED_AT, RETRAIN_REQUESTED_AT } from '../src/constants';
import { productUpdateKind } from '../src/service';
import { Webhook } from 'standardwebhooks';
import { webhookKeys, WebhookVerifier } from '../src/webhook';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('1000 changes in one channel become one patch, then at most one patch per interval', async () => {
  const patches: { channelId: string; annotations: Record<string, string>; at: number }[] = [];
  const reporter = new ChangeReporter(async (channelId, annotations) => {
    patches.push({ channelId, annotations, at: Date.now() });
  }, { intervalMs: 200 });
  const base = Date.UTC(2026, 11, 2, 7, 0, 0);
  for (let i = 0; i < 1000; i++) reporter.report('7', i === 999 ? 'imageChanged' : 'productAdded', new Date(base + i));
  await sleep(50);
  assert.equal(patches.length, 1);
  assert.deepEqual(patches[0].annotations, {
    [INVENTORY_CHANGED_AT]: new Date(base + 999).toISOString(),
    [INVENTORY_CHANGE]: 'imageChanged', // the latest change's kind, as if every change had been sent
  });
  // A steady stream of changes over ~1 s: patches no closer than the interval.
  const until = Date.now() + 1000;
  while (Date.now() < until) {
    reporter.report('7', 'productDeleted');
    await sleep(5);
  }
  await sleep(300);
  assert.ok(patches.length >= 5 && patches.length <= 7, `${patches.length} patches`);
  for (let i = 1; i < patches.length; i++) assert.ok(patches[i].at - patches[i - 1].at >= 195, 'two patches within the interval');
  reporter.close();
});

test('channels are coalesced separately; the retrain request rides along', async () => {
  const patches: [string, Record<string, string>][] = [];
  const reporter = new ChangeReporter(async (id, a) => void patches.push([id, a]), { intervalMs: 100 });
  reporter.report('1', 'productAdded');
  reporter.report('2', 'productDeleted');
  reporter.requestRetrain('2');
  await sleep(30);
  assert.equal(patches.length, 2);
  const second = patches.find(([id]) => id === '2')?.[1] ?? {};
  assert.equal(second[INVENTORY_CHANGE], 'productDeleted');
  assert.ok(second[RETRAIN_REQUESTED_AT]);
  reporter.close();
});

test('a failed patch is retried with backoff and never loses the latest change', async () => {
  let down = true;
  const accepted: Record<string, string>[] = [];
  const errors: (number | undefined)[] = [];
  const reporter = new ChangeReporter(
    async (_id, annotations) => {
      if (down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      accepted.push(annotations);
    },
    { intervalMs: 50, maxRetryDelayMs: 200, onError: (_id, _e, retryIn) => errors.push(retryIn) },
  );
  const first = new Date('2026-12-02T07:00:00.000Z');
  const later = new Date('2026-12-02T07:00:05.000Z');
  reporter.report('3', 'productAdded', first);
  await sleep(120);
  reporter.report('3', 'imageChanged', later); // a newer change while the API is down
  await sleep(400);
  assert.equal(accepted.length, 0);
  assert.ok(errors.length >= 3, `${errors.length} attempts`);
  assert.deepEqual(errors.slice(0, 3), [50, 100, 200]);
  assert.ok(errors.every((retry) => retry !== undefined && retry <= 200), 'backoff capped');
  assert.deepEqual(reporter.pendingChannels(), ['3']);
  down = false;
  await sleep(300);
  assert.equal(accepted.length, 1);
  assert.equal(accepted[0][INVENTORY_CHANGED_AT], later.toISOString());
  assert.equal(accepted[0][INVENTORY_CHANGE], 'imageChanged');
  assert.deepEqual(reporter.pendingChannels(), []);
  reporter.close();
});

test('a channel without a ChannelModel (404) is dropped, not retried', async () => {
  let calls = 0;
  const reporter = new ChangeReporter(async () => {
    calls += 1;
    throw Object.assign(new Error('not found'), { code: 404 });
  }, { intervalMs: 20 });
  reporter.report('9', 'productAdded');
  await sleep(200);
  assert.equal(calls, 1);
  assert.deepEqual(reporter.pendingChannels(), []);
  reporter.close();
});

const KEY = 'whsec_' + Buffer.from('0123456789abcdef0123456789abcdef').toString('base64');
const OTHER = 'whsec_' + Buffer.from('fedcba9876543210fedcba9876543210').toString('base64');

function signed(key: string, body: Buffer, id = 'msg_1', at = new Date()): Record<string, string> {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(key).sign(id, at, body),
  };
}

test('webhook verification (Standard Webhooks): valid, tampered, wrong key, stale, unsigned', () => {
  const verifier = new WebhookVerifier(KEY);
  const body = Buffer.from('{"type":"version.served"}');
  assert.equal(verifier.verify(Buffer.from('{"type":"version.pinned"}'), signed(KEY, body)), 'bad-signature');
  assert.equal(verifier.verify(body, signed(OTHER, body)), 'bad-signature');
  assert.equal(verifier.verify(body, signed(KEY, body, 'msg_1', new Date(Date.now() - 301_000))), 'stale');
  assert.equal(verifier.verify(body, signed(KEY, body, 'msg_1', new Date(Date.now() + 301_000))), 'stale');
  assert.equal(verifier.verify(body, {}), 'unsigned');
  assert.equal(verifier.verify(body, { ...signed(KEY, body), 'webhook-timestamp': '12x' }), 'bad-signature');
  assert.equal(verifier.verify(body, signed(KEY, body)), 'ok');
});

test('a handled event: its retry is a duplicate, the same request again a replay', () => {
  const verifier = new WebhookVerifier(KEY);
  const body = Buffer.from('{"type":"training.queued"}');
  const first = signed(KEY, body, 'msg_7', new Date(Date.now() - 2000));
  assert.equal(verifier.verify(body, first), 'ok');
  assert.equal(verifier.verify(body, first), 'ok', 'not handled yet (e.g. it failed): a retry must get through');
  verifier.handled(first);
  assert.equal(verifier.verify(body, first), 'replayed');
  assert.equal(verifier.verify(body, signed(KEY, body, 'msg_7')), 'duplicate', 'the operator retries with the same id, a new signature');
});

test('keys: several whsec_ keys while rotating; anything else is one raw key', () => {
  const body = Buffer.from('{}');
  const rotating = new WebhookVerifier(`${OTHER} ${KEY}`);
  assert.equal(rotating.verify(body, signed(KEY, body, 'a')), 'ok');
  assert.equal(rotating.verify(body, signed(OTHER, body, 'b')), 'ok');
  const raw = 'deadbeef'.repeat(8); // the 0.1 format: `openssl rand -hex 32`
  const rawKey = 'whsec_' + Buffer.from(raw).toString('base64');
  assert.equal(new WebhookVerifier(raw).verify(body, signed(rawKey, body)), 'ok');
  assert.equal(webhookKeys(`${KEY}\n${OTHER}\n`).length, 2);
});

test('bearer token check', () => {
  assert.equal(bearerMatches('Bearer s3cret', 's3cret'), true);
  assert.equal(bearerMatches('bearer s3cret', 's3cret'), true);
  assert.equal(bearerMatches('Bearer s3cre', 's3cret'), false);
  assert.equal(bearerMatches('Basic s3cret', 's3cret'), false);
  assert.equal(bearerMatches(undefined, 's3cret'), false);
});

test('which product updates matter to the model', () => {
  assert.equal(productUpdateKind({ id: 1, translations: [{ name: 'Renamed' }] }), undefined);
  assert.equal(productUpdateKind({ id: 1, enabled: false }), 'productDeleted');
  assert.equal(productUpdateKind({ id: 1, enabled: true }), 'productAdded');
  assert.equal(productUpdateKind({ id: 1, assetIds: [2] }), 'imageChanged');
  assert.equal(productUpdateKind({ id: 1, featuredAssetId: 2 }), 'imageChanged');
  assert.equal(productUpdateKind(5), undefined);
});
