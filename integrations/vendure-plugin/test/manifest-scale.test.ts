/**
 * The manifest of a 20,000-product channel streams from a real Vendure server (sql.js) in pages:
 * the answer's first bytes come at once, the whole within the trainer's 30 s manifest timeout.
 * Products are seeded with TypeORM inserts (the Admin API would take minutes for 20,000).
 */
import { Asset, AssetType, Channel, mergeConfig, Product, ProductAsset, TransactionalConnection } from '@vendure/core';
import { createTestEnvironment, registerInitializer, SqljsInitializer, testConfig } from '@vendure/testing';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ChannelModelPlugin } from '../src';

/** The IDs of the last `count` rows of an autoincrement table (one writer: they are consecutive). */
async function lastIds(manager: { query(sql: string): Promise<{ id: number }[]> }, table: string, count: number): Promise<number[]> {
  const [{ id }] = await manager.query(`SELECT MAX(id) AS id FROM "${table}"`);
  return Array.from({ length: count }, (_, i) => id - count + 1 + i);
}

const execFileAsync = promisify(execFile);

const PRODUCTS = Number(process.env.MANIFEST_SCALE_PRODUCTS ?? 20000);
const TOKEN = 'scale-token';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test(`the manifest of ${PRODUCTS} products streams within the trainer's timeout`, async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'channelmodel-scale-'));
  const kubeconfig = path.join(work, 'kubeconfig');
  writeFileSync(kubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: none',
    'clusters: [{name: none, cluster: {server: "http://127.0.0.1:9", insecure-skip-tls-verify: true}}]',
    'users: [{name: none, user: {token: x}}]', 'contexts: [{name: none, context: {cluster: none, user: none}}]', '',
  ].join('\n'));
  const port = await freePort();
  registerInitializer('sqljs', new SqljsInitializer(path.join(work, 'db')));
  const { server } = createTestEnvironment(mergeConfig(testConfig, {
    apiOptions: { port },
    plugins: [ChannelModelPlugin.init({
      namespace: 'shop', kubeConfig: kubeconfig, manifestToken: TOKEN, webhookSecret: 'unused',
      assetUrlPrefix: 'https://shop.example/assets/', assetUrlSuffix: '?preset=large',
    })],
  }));
  await server.init({
    initialData: {
      defaultLanguage: 'en' as never, defaultZone: 'Europe', taxRates: [], shippingMethods: [], paymentMethods: [], collections: [],
      countries: [{ name: 'United Kingdom', code: 'GB', zone: 'Europe' }],
    },
  });
  try {
    const dataSource = server.app.get(TransactionalConnection).rawConnection;
    const channel = (await dataSource.getRepository(Channel).find())[0];
    const junction = dataSource.getMetadata(Product).manyToManyRelations.find((r) => r.propertyName === 'channels')!.junctionEntityMetadata!;
    const [productColumn, channelColumn] = [junction.ownerColumns[0].databaseName, junction.inverseColumns[0].databaseName];
    const seeded = Date.now();
    const CHUNK = 100;
    for (let start = 0; start < PRODUCTS; start += CHUNK) {
      const count = Math.min(CHUNK, PRODUCTS - start);
      await dataSource.transaction(async (manager) => {
        const assets = await manager.createQueryBuilder().insert().into(Asset).values(
          Array.from({ length: count }, (_, i) => ({
            name: `p${start + i}.jpg`, type: AssetType.IMAGE, mimeType: 'image/jpeg', width: 800, height: 600,
            fileSize: 1000, source: `source/p${start + i}.jpg`, preview: `preview/p${start + i}.jpg`,
          })),
        ).execute();
        void assets;
        const assetIds = await lastIds(manager, 'asset', count); // sqlite reports one ID per multi-row insert
        await manager.createQueryBuilder().insert().into(Product).values(
          assetIds.map((id) => ({ enabled: true, featuredAsset: { id } })),
        ).execute();
        const productIds = await lastIds(manager, 'product', count);
        await manager.createQueryBuilder().insert().into(ProductAsset).values(
          productIds.map((productId, i) => ({ productId, assetId: assetIds[i], position: 0 })),
        ).execute();
        await manager.query(
          `INSERT INTO "${junction.tableName}" ("${productColumn}", "${channelColumn}") VALUES ${productIds.map(() => '(?, ?)').join(', ')}`,
          productIds.flatMap((id) => [id, channel.id]),
        );
      });
    }
    const seedSeconds = (Date.now() - seeded) / 1000;

    // The client in its own process: the server's event loop must not stall its reads.
    const bodyPath = path.join(work, 'manifest.json');
    const client = `
      const started = performance.now();
      fetch(process.argv[1], { headers: { Authorization: 'Bearer ' + process.argv[2] } }).then(async (response) => {
        const reader = response.body.getReader(); const chunks = []; let firstByteMs = 0;
        for (;;) { const { done, value } = await reader.read(); if (done) break;
          if (!firstByteMs) firstByteMs = performance.now() - started; chunks.push(value); }
        require('fs').writeFileSync(process.argv[3], Buffer.concat(chunks));
        console.log(JSON.stringify({ status: response.status, firstByteMs, totalMs: performance.now() - started }));
      });`;
    const { stdout } = await execFileAsync(process.execPath, ['-e', client, `http://127.0.0.1:${port}/channelmodel/manifest/T_${channel.id}`, TOKEN, bodyPath]);
    const { status, firstByteMs, totalMs } = JSON.parse(stdout) as { status: number; firstByteMs: number; totalMs: number };
    assert.equal(status, 200);
    const body = readFileSync(bodyPath);
    const manifest = JSON.parse(body.toString('utf8')) as { products: { id: string; images: string[] }[] };
    assert.equal(manifest.products.length, PRODUCTS);
    assert.equal(new Set(manifest.products.map((p) => p.id)).size, PRODUCTS);
    assert.match(manifest.products[PRODUCTS - 1].images[0], /^https:\/\/shop\.example\/assets\/source\/p\d+\.jpg\?preset=large$/);
    assert.ok(totalMs < 30000, `${totalMs} ms: over the trainer's 30 s manifest timeout`);
    console.log(`# manifest ${PRODUCTS} products: ${body.length} bytes, first byte ${firstByteMs.toFixed(0)} ms, complete ${totalMs.toFixed(0)} ms (seeded in ${seedSeconds.toFixed(1)} s)`);
  } finally {
    await server.destroy();
  }
});
