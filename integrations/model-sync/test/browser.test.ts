/**
 * model-sync in real headless Chromium (playwright-core + Debian's chromium) against the real
 * model server. Driven by tests/integrations/test_model_sync.py, which trains the models, starts
 * `channelmodel serve` and passes CHANNELMODEL_SYNC_E2E_CONFIG. Between the page and the model
 * server sits a proxy of this test's own, which can corrupt or cut off `weights.bin`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type * as Sync from '../src/index.js';

interface Config {
  modelServer: string;
  channelId: string;
  chromium: string;
  publish: string[]; // argv prefix: + SOURCE_VERSION STORE_URI CHANNEL VERSION
  storeUri: string;
  photos: { productId: string; path: string }[];
  resultsPath: string;
}

declare global {
  interface Window {
    ChannelModelSync: typeof Sync;
    tf: Sync.TfNamespace & { version: { tfjs: string } };
    tmImage: Sync.TeachableMachineNamespace;
    photos: HTMLImageElement[];
    photoLoadMs: number;
  }
}

const configPath = process.env.CHANNELMODEL_SYNC_E2E_CONFIG;
const skip = configPath ? false : 'needs CHANNELMODEL_SYNC_E2E_CONFIG: run tests/integrations/test_model_sync.py';
const config = (configPath ? JSON.parse(readFileSync(configPath, 'utf8')) : {}) as Config;
const PACKAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LIBS: Record<string, string> = {
  'model-sync.min.js': 'dist/model-sync.min.js',
  'tf4.min.js': 'node_modules/@tensorflow/tfjs/dist/tf.min.js',
  'tf1.min.js': 'node_modules/tfjs-1.3.1/dist/tf.min.js',
  'tm.min.js': 'node_modules/@teachablemachine/image/dist/teachablemachine-image.min.js',
};

/** Faults the proxy injects into responses whose path contains the key. */
const faults = new Map<string, 'corrupt' | 'cut'>();

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

/** The model server as the page sees it: forwards everything, corrupts or cuts off on demand. */
function modelProxy(target: URL): http.Server {
  return http.createServer((req, res) => {
    const upstream = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      const fault = [...faults].find(([key]) => req.url?.includes(key))?.[1];
      if (!fault || answer.statusCode !== 200) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, answer.headers); // the real Content-Length and ETag
        if (fault === 'cut') {
          res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
        } else {
          body[Math.floor(body.length / 2)] ^= 0xff;
          res.end(body);
        }
      });
    });
    req.pipe(upstream);
    upstream.on('error', () => res.destroy());
  });
}

function pageServer(): http.Server {
  const html = (tf: string) => `<!doctype html><html><head><meta charset="utf-8"><title>pos</title>
    ${tf === 'tm' ? '<script src="/lib/tf1.min.js"></script><script src="/lib/tm.min.js"></script>' : '<script src="/lib/tf4.min.js"></script>'}
    <script src="/lib/model-sync.min.js"></script></head><body></body></html>`;
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://page');
    const lib = url.pathname.startsWith('/lib/') ? LIBS[url.pathname.slice(5)] : undefined;
    const photo = /^\/photo\/(\d+)$/.exec(url.pathname);
    if (url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end(html(url.searchParams.get('tf') ?? '4'));
    } else if (lib) {
      res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(readFileSync(path.join(PACKAGE, lib)));
    } else if (photo && config.photos[Number(photo[1])]) {
      res.writeHead(200, { 'Content-Type': 'image/jpeg' }).end(readFileSync(config.photos[Number(photo[1])].path));
    } else {
      res.writeHead(404).end();
    }
  });
}

let browser: Browser;
let proxy: http.Server;
let pages: http.Server;
let modelUrl: string;
let pageUrl: string;
const figures: Record<string, number> = {};

function publish(sourceVersion: string, version: string): void {
  const [command, ...args] = config.publish;
  execFileSync(command, [...args, sourceVersion, config.storeUri, config.channelId, version], { stdio: 'inherit' });
}

async function openPage(context: BrowserContext, tf: '4' | 'tm'): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${pageUrl}/?tf=${tf}`);
  // The held-back photos, as a camera would give them: in memory, usable offline.
  await page.evaluate(async (count) => {
    const started = performance.now();
    window.photos = [];
    for (let i = 0; i < count; i++) {
      const image = new Image();
      image.src = URL.createObjectURL(await (await fetch(`/photo/${i}`)).blob());
      await image.decode();
      window.photos.push(image);
    }
    window.photoLoadMs = performance.now() - started;
  }, config.photos.length);
  return page;
}

/** Runs sync() in the page: the result, or the error's code and message. */
function sync(page: Page, location?: Sync.ModelLocation, verifyLoad?: 'tfjs' | 'refuse'): Promise<{ result?: Sync.SyncResult; code?: string; message?: string; progress: number }> {
  return page.evaluate(async ({ channelId, serverUrl, location, verifyLoad }) => {
    let progress = 0;
    const { ModelSync, loadWithTfjs } = window.ChannelModelSync;
    const s = new ModelSync({
      channelId, serverUrl, onProgress: () => void (progress += 1),
      verifyLoad: verifyLoad === undefined ? undefined : async (model) => {
        if (verifyLoad === 'refuse') throw new Error('refused by the app');
        (await loadWithTfjs(window.tf, model)).dispose(); // it loads: swap
      },
    });
    try {
      return { result: await s.sync(location), progress };
    } catch (error) {
      const e = error as { code?: string; message?: string };
      return { code: e.code, message: e.message, progress };
    }
  }, { channelId: config.channelId, serverUrl: modelUrl, location, verifyLoad });
}

/** Loads the cached model (no network) with TF.js or Teachable Machine and predicts every photo. */
interface PredictRun {
  version: string;
  top: { expected: string; got: Sync.Prediction[] }[];
  /** Page load (navigation start) to the first prediction, less the test's own photo loading. */
  ms: number;
  readMs: number; // IndexedDB read
  loadMs: number; // TF.js model from memory
  firstPredictMs: number; // the first predict() (backend warm-up included)
  backend: string;
}

function predictAll(page: Page, loader: 'tfjs' | 'tm', backend?: 'cpu' | 'webgl'): Promise<PredictRun> {
  return page.evaluate(async ({ channelId, photos, loader, backend }) => {
    const { ModelSync, loadWithTfjs, loadWithTeachableMachine } = window.ChannelModelSync;
    if (backend) await (window.tf as unknown as { setBackend(name: string): Promise<boolean> }).setBackend(backend);
    const t0 = performance.now();
    const stored = await new ModelSync({ channelId }).current();
    if (!stored) throw new Error('nothing cached');
    const t1 = performance.now();
    const classifier = loader === 'tm' ? await loadWithTeachableMachine(window.tmImage, stored) : await loadWithTfjs(window.tf, stored);
    const t2 = performance.now();
    const top = [];
    let ms = 0;
    let firstPredictMs = 0;
    for (let i = 0; i < photos.length; i++) {
      const got = await classifier.predict(window.photos[i], 3);
      if (i === 0) {
        ms = performance.now() - window.photoLoadMs;
        firstPredictMs = performance.now() - t2;
      }
      top.push({ expected: photos[i].productId, got });
    }
    classifier.dispose();
    const used = (window.tf as unknown as { getBackend(): string }).getBackend();
    return { version: stored.version, top, ms, readMs: t1 - t0, loadMs: t2 - t1, firstPredictMs, backend: used };
  }, { channelId: config.channelId, photos: config.photos, loader, backend });
}

function assertRecognised(run: { top: { expected: string; got: Sync.Prediction[] }[] }, products: string[]): void {
  const relevant = run.top.filter((t) => products.includes(t.expected));
  assert.ok(relevant.length >= products.length);
  const right = relevant.filter((t) => t.got[0].productId === t.expected).length;
  // Held-back photos: every product recognised at least once, most photos right.
  for (const product of products) assert.ok(relevant.some((t) => t.expected === product && t.got[0].productId === product), `${product} never recognised: ${JSON.stringify(relevant)}`);
  assert.ok(right >= relevant.length - 1, `${right}/${relevant.length} right: ${JSON.stringify(relevant)}`);
  for (const t of relevant) assert.ok(t.got.length === Math.min(3, products.length) && t.got[0].probability >= t.got[1].probability);
}

/** Model-file bytes the page received over the network while `fn` ran (CDP: encoded bytes). */
async function networkBytes(page: Page, fn: () => Promise<unknown>): Promise<{ model: number; total: number }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const urls = new Map<string, string>();
  let model = 0;
  let total = 0;
  cdp.on('Network.responseReceived', (e) => urls.set(e.requestId, e.response.url));
  cdp.on('Network.loadingFinished', (e) => {
    total += e.encodedDataLength;
    if (/\/v[\d.]+\/(model\.json|weights\.bin|metadata\.json)$/.test(urls.get(e.requestId) ?? '')) model += e.encodedDataLength;
  });
  await fn();
  await new Promise((resolve) => setTimeout(resolve, 200));
  await cdp.detach();
  return { model, total };
}

const V1 = ['prod-banana', 'prod-watermelon', 'prod-oatly'];
const V2 = [...V1, 'prod-carrots'];

before(async () => {
  if (skip) return;
  proxy = modelProxy(new URL(config.modelServer));
  modelUrl = await listen(proxy);
  pages = pageServer();
  pageUrl = await listen(pages);
  browser = await chromium.launch({ executablePath: config.chromium, args: ['--no-sandbox', '--disable-gpu'] });
});

after(async () => {
  if (skip) return;
  await browser?.close();
  proxy?.close();
  pages?.close();
  writeFileSync(config.resultsPath, JSON.stringify(figures, null, 2));
});

test('sync, offline use, version bumps, refused downloads (TF.js 4)', { skip }, async (t) => {
  const context = await browser.newContext();
  let page = await openPage(context, '4');

  await t.test('first sync downloads, verifies and predicts the held-back photos', async () => {
    const first = await sync(page);
    assert.equal(first.result?.status, 'updated', JSON.stringify(first));
    assert.equal(first.result?.version, '1.0.0');
    assert.ok((first.result?.bytesDownloaded ?? 0) > 100_000, 'the weights came down');
    assert.ok(first.progress >= 3, 'progress events');
    figures.firstSyncModelBytes = first.result?.bytesDownloaded ?? 0;
    const run = await predictAll(page, 'tfjs');
    assert.equal(run.version, '1.0.0');
    assertRecognised(run, V1);
  });

  await t.test('a second sync at the same version transfers no model bytes', async () => {
    let second: Awaited<ReturnType<typeof sync>> | undefined;
    const bytes = await networkBytes(page, async () => void (second = await sync(page)));
    assert.equal(second?.result?.status, 'up-to-date');
    assert.equal(second?.result?.bytesDownloaded, 0);
    assert.equal(bytes.model, 0);
    figures.unchangedSyncModelBytes = bytes.model;
    figures.unchangedSyncTotalBytes = bytes.total; // latest.json (revalidated)
    // With the version from the Shop API, not even latest.json.
    const given = await networkBytes(page, () => sync(page, { modelBaseUrl: `${modelUrl}/assets/ml-models/${config.channelId}/v1.0.0/`, modelVersion: '1.0.0' }));
    assert.equal(given.total, 0);
    figures.unchangedSyncGivenVersionBytes = given.total;
  });

  await t.test('a version bump downloads the new model; the one before is kept', async () => {
    publish('2.0.0', '1.0.1');
    const bump = await sync(page);
    assert.equal(bump.result?.status, 'updated');
    assert.equal(bump.result?.version, '1.0.1');
    assert.equal(bump.result?.previousVersion, '1.0.0');
    assertRecognised(await predictAll(page, 'tfjs'), V2);
  });

  await t.test('network cut (CDP): sync reports offline, the cached model loads and predicts', async () => {
    await page.close();
    page = await openPage(context, '4');
    await context.setOffline(true);
    try {
      const offline = await sync(page);
      assert.equal(offline.result?.status, 'offline');
      assert.equal(offline.result?.version, '1.0.1');
      const run = await predictAll(page, 'tfjs');
      assert.equal(run.version, '1.0.1');
      assertRecognised(run, V2);
    } finally {
      await context.setOffline(false);
    }
  });

  await t.test('time from page load to first prediction from IndexedDB', async () => {
    for (const backend of ['webgl', 'cpu'] as const) {
      const runs: PredictRun[] = [];
      for (let i = 0; i < 3; i++) {
        await page.close();
        page = await openPage(context, '4');
        runs.push(await predictAll(page, 'tfjs', backend));
      }
      runs.sort((a, b) => a.ms - b.ms);
      const median = runs[1];
      assert.equal(median.backend, backend);
      figures[`${backend}FirstPredictionFromIndexedDbMs`] = Math.round(median.ms);
      figures[`${backend}IndexedDbReadMs`] = Math.round(median.readMs);
      figures[`${backend}ModelLoadFromMemoryMs`] = Math.round(median.loadMs);
      figures[`${backend}FirstPredictMs`] = Math.round(median.firstPredictMs);
    }
  });

  const versions = () => page.evaluate(async (channelId) => new window.ChannelModelSync.ModelSync({ channelId }).store.versions(channelId), config.channelId);

  await t.test('a corrupt weights.bin is refused, the previous model stays in use', async () => {
    publish('1.0.0', '1.0.2');
    faults.set('/v1.0.2/weights.bin', 'corrupt');
    const corrupt = await sync(page);
    assert.equal(corrupt.code, 'invalid-model', JSON.stringify(corrupt));
    assert.match(corrupt.message ?? '', /ETag/);
    assert.deepEqual((await versions()).sort(), ['1.0.0', '1.0.1']);
    assert.equal((await predictAll(page, 'tfjs')).version, '1.0.1');
  });

  await t.test('a download cut off in the middle of weights.bin leaves the previous model in use', async () => {
    faults.set('/v1.0.2/weights.bin', 'cut');
    const cut = await sync(page);
    assert.equal(cut.code, 'download-failed', JSON.stringify(cut));
    assert.deepEqual((await versions()).sort(), ['1.0.0', '1.0.1']);
    assertRecognised(await predictAll(page, 'tfjs'), V2);
  });

  await t.test('not enough storage: refused before downloading the weights', async () => {
    faults.clear();
    await page.evaluate(() => {
      Object.defineProperty(navigator.storage, 'estimate', { value: async () => ({ quota: 50_000_000, usage: 49_990_000 }) });
    });
    const quota = await sync(page);
    assert.equal(quota.code, 'quota', JSON.stringify(quota));
    assert.equal((await predictAll(page, 'tfjs')).version, '1.0.1');
    await page.close();
    page = await openPage(context, '4');
  });

  await t.test('a version the app cannot load (verifyLoad throws) is refused and deleted', async () => {
    const refused = await sync(page, undefined, 'refuse');
    assert.equal(refused.code, 'load-failed', JSON.stringify(refused));
    assert.deepEqual((await versions()).sort(), ['1.0.0', '1.0.1']);
    assert.equal((await predictAll(page, 'tfjs')).version, '1.0.1');
  });

  await t.test('once the network is healthy the new version replaces it; older versions are dropped', async () => {
    const healed = await sync(page, undefined, 'tfjs');
    assert.equal(healed.result?.version, '1.0.2');
    assert.deepEqual((await versions()).sort(), ['1.0.1', '1.0.2']);
    assertRecognised(await predictAll(page, 'tfjs'), V1);
  });

  await context.close();
});

test('offline without a cached model: a clear error', { skip }, async () => {
  const context = await browser.newContext();
  const page = await openPage(context, '4');
  await context.setOffline(true);
  const none = await sync(page);
  assert.equal(none.code, 'offline');
  assert.match(none.message ?? '', /no network and no cached model/);
  await context.close();
});

test('Teachable Machine (TF.js 1.3.1) loads the synced model offline and predicts', { skip }, async () => {
  const context = await browser.newContext();
  const page = await openPage(context, 'tm');
  assert.equal(await page.evaluate(() => window.tf.version.tfjs), '1.3.1');
  const first = await sync(page);
  assert.equal(first.result?.version, '1.0.2', JSON.stringify(first));
  await context.setOffline(true);
  assertRecognised(await predictAll(page, 'tm'), V1);
  assertRecognised(await predictAll(page, 'tfjs'), V1); // plain TF.js 1.3.1 through loadWithTfjs
  await context.close();
});
