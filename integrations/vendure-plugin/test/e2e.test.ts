/**
 * The plugin in a real Vendure server (@vendure/testing, sql.js) against the channelmodel operator
 * on the test Kubernetes API. Driven by tests/integrations/test_vendure_plugin.py, which starts the
 * API, the job runner (stand-in trainer that reads this server's manifest with the real trainer's
 * code and publishes its product IDs as labels) and the operator, and passes CHANNELMODEL_E2E_CONFIG.
 */
import * as k8s from '@kubernetes/client-node';
import { DefaultLogger, LogLevel, mergeConfig } from '@vendure/core';
import { createTestEnvironment, registerInitializer, SimpleGraphQLClient, SqljsInitializer, testConfig } from '@vendure/testing';
import { DocumentNode, Kind, parse } from 'graphql';
import gql from 'graphql-tag';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { ChannelModelPlugin, ChannelModelService, GROUP, PLURAL, VERSION } from '../src';
import { ApiProxy, kubeConfigFrom, PNG, sleep, waitFor } from './support';

interface E2EConfig {
  kubeconfig: string;
  namespace: string;
  storeDir: string;
  secretName: string;
  manifestToken: string;
  webhookSecret: string;
}

const configPath = process.env.CHANNELMODEL_E2E_CONFIG;
const skip = configPath ? false : 'needs CHANNELMODEL_E2E_CONFIG: run tests/integrations/test_vendure_plugin.py';
const config: E2EConfig = configPath ? (JSON.parse(readFileSync(configPath, 'utf8')) as E2EConfig) : ({} as E2EConfig);

const CHANNEL = 'T_1'; // the default channel, as the Admin API (TestingEntityIdStrategy) names it
const NAME = 'vendure-channel-t-1';

const CREATE_ASSETS = gql`
  mutation CreateAssets($input: [CreateAssetInput!]!) {
    createAssets(input: $input) { ... on Asset { id source } ... on ErrorResult { message } }
  }
`;
const CREATE_PRODUCT = gql`
  mutation CreateProduct($input: CreateProductInput!) { createProduct(input: $input) { id } }
`;
const DELETE_PRODUCT = gql`
  mutation DeleteProduct($id: ID!) { deleteProduct(id: $id) { result } }
`;
const UPDATE_CHANNEL = gql`
  mutation UpdateChannel($input: UpdateChannelInput!) {
    updateChannel(input: $input) { ... on Channel { id customFields { modelAutoRetrainEnabled } } }
  }
`;
/** An operation of docs/integration.md's GraphQL blocks: the guide's queries are the ones tested. */
function fromDocs(name: string): DocumentNode {
  const text = readFileSync(path.resolve(__dirname, '../../../../docs/integration.md'), 'utf8');
  for (const block of text.matchAll(/```graphql\n([\s\S]*?)```/g)) {
    const operation = parse(block[1]).definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION && d.name?.value === name);
    if (operation) return { kind: Kind.DOCUMENT, definitions: [operation] };
  }
  throw new Error(`docs/integration.md has no GraphQL operation ${name}`);
}

const ACTIVE_CHANNEL = fromDocs('ActiveChannelModel');
const STATUS = fromDocs('ChannelModelStatus');
const RETRAIN = fromDocs('RetrainChannelModel');
const CREATE_ROLE = gql`
  mutation CreateRole($input: CreateRoleInput!) { createRole(input: $input) { id } }
`;
const CREATE_ADMIN = gql`
  mutation CreateAdministrator($input: CreateAdministratorInput!) { createAdministrator(input: $input) { id } }
`;

interface ShopChannel {
  activeChannel: {
    customFields: { modelBaseUrl: string | null; modelVersion: string | null; modelLastTrained: string | null; modelTrainingStatus: string | null };
  };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let proxy: ApiProxy;
let custom: k8s.CustomObjectsApi;
let server: { init: (o: never) => Promise<void>; destroy: () => Promise<void>; app: { get: <T>(t: new (...a: never[]) => T) => T } };
let adminClient: SimpleGraphQLClient;
let shopClient: SimpleGraphQLClient;
let port: number;
let imageFile: string;

async function channelModel(): Promise<{ metadata: { annotations?: Record<string, string> }; spec: { autoRetrain?: boolean }; status?: { modelVersion?: string; currentJob?: unknown } }> {
  return (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: config.namespace, plural: PLURAL, name: NAME })) as never;
}

async function shopVersion(): Promise<string | null> {
  const { activeChannel } = await shopClient.query<ShopChannel>(ACTIVE_CHANNEL);
  return activeChannel.customFields.modelVersion;
}

function labelsOf(version: string): string[] {
  const metadata = JSON.parse(readFileSync(path.join(config.storeDir, CHANNEL, `v${version}`, 'metadata.json'), 'utf8')) as { labels: string[] };
  return metadata.labels;
}

async function createProduct(name: string, withImage = true): Promise<string> {
  let assetIds: string[] = [];
  if (withImage) {
    const { createAssets } = (await adminClient.fileUploadMutation({
      mutation: CREATE_ASSETS,
      filePaths: [imageFile],
      mapVariables: () => ({ input: [{ file: null }] }),
    })) as { createAssets: { id: string; source: string }[] };
    assetIds = [createAssets[0].id];
  }
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  const { createProduct: product } = await adminClient.query<{ createProduct: { id: string } }>(CREATE_PRODUCT, {
    input: { translations: [{ languageCode: 'en', name, slug, description: '' }], assetIds, featuredAssetId: assetIds[0] },
  });
  return product.id;
}

/** The version the Shop API reports once the operator served it and the webhook came back. */
async function waitForShopVersion(version: string, timeoutMs = 60000): Promise<void> {
  await waitFor(`the Shop API to report modelVersion ${version}`, async () => (await shopVersion()) === version, timeoutMs);
}

before(async () => {
  if (skip) return;
  const work = mkdtempSync(path.join(tmpdir(), 'channelmodel-vendure-'));
  imageFile = path.join(work, 'photo.png');
  writeFileSync(imageFile, PNG);
  const direct = kubeConfigFrom(config.kubeconfig);
  custom = direct.makeApiClient(k8s.CustomObjectsApi);
  proxy = await new ApiProxy(new URL(direct.getCurrentCluster()!.server)).start();
  const scheme = new URL(direct.getCurrentCluster()!.server).protocol;
  port = await freePort();
  registerInitializer('sqljs', new SqljsInitializer(path.join(work, 'db')));
  const env = createTestEnvironment(
    mergeConfig(testConfig, {
      apiOptions: { port },
      logger: process.env.LOG ? new DefaultLogger({ level: LogLevel.Info }) : testConfig.logger,
      plugins: [
        ChannelModelPlugin.init({
          namespace: config.namespace,
          kubeConfig: kubeConfigFrom(config.kubeconfig, `${scheme}//127.0.0.1:${proxy.port}`),
          manifestToken: config.manifestToken,
          webhookSecret: config.webhookSecret,
          assetUrlPrefix: `http://127.0.0.1:${port}/assets/`,
          maxRetryDelayMs: 1000,
        }),
      ],
    }),
  );
  server = env.server as never;
  adminClient = env.adminClient;
  shopClient = env.shopClient;
  await server.init({
    initialData: {
      defaultLanguage: 'en', defaultZone: 'Europe', taxRates: [], shippingMethods: [], paymentMethods: [], collections: [],
      countries: [{ name: 'United Kingdom', code: 'GB', zone: 'Europe' }],
    },
    customerCount: 0,
  } as never);
  await adminClient.asSuperAdmin();
});

after(async () => {
  if (skip) return;
  await server?.destroy();
  await proxy?.close();
});

test('catalog changes train the channel model and the Shop API serves its version', { skip }, async (t) => {
  const reporter = server.app.get(ChannelModelService).reporter;
  // Two products before the ChannelModel exists: their changes find no ChannelModel (404) and are dropped.
  const apple = await createProduct('Apple');
  const banana = await createProduct('Banana');
  await createProduct('No photo', false);
  await sleep(1500);
  assert.deepEqual(reporter.pendingChannels(), [], '404s are not retried');

  const base = `http://127.0.0.1:${port}/channelmodel`;
  await t.test('manifest: bearer-protected, in the operator format', async () => {
    assert.equal((await fetch(`${base}/manifest/${CHANNEL}`)).status, 401);
    assert.equal((await fetch(`${base}/manifest/${CHANNEL}`, { headers: { Authorization: 'Bearer wrong' } })).status, 401);
    const answer = await fetch(`${base}/manifest/${CHANNEL}`, { headers: { Authorization: `Bearer ${config.manifestToken}` } });
    assert.equal(answer.status, 200);
    const manifest = (await answer.json()) as { channelId: string; products: { id: string; images: string[] }[] };
    assert.equal(manifest.channelId, CHANNEL);
    assert.deepEqual(manifest.products.map((p) => p.id), [apple, banana, manifest.products[2].id]);
    assert.equal(manifest.products[0].images.length, 1);
    assert.match(manifest.products[0].images[0], new RegExp(`^http://127\\.0\\.0\\.1:${port}/assets/`));
    assert.deepEqual(manifest.products[2].images, []);
  });

  await custom.createNamespacedCustomObject({
    group: GROUP, version: VERSION, namespace: config.namespace, plural: PLURAL,
    body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'ChannelModel', metadata: { name: NAME },
      spec: {
        channelId: CHANNEL,
        manifest: { url: `${base}/manifest/${CHANNEL}`, authSecretRef: { name: config.secretName, key: 'manifest-token' } },
        notify: { webhookUrl: `${base}/events`, secretRef: { name: config.secretName, key: 'webhook-hmac' } },
        debounceSeconds: 3, cooldownSeconds: 0, training: { gpus: 0 },
      },
    },
  });
  await waitForShopVersion('1.0.0');
  assert.deepEqual(labelsOf('1.0.0'), [apple, banana].sort());
  const { activeChannel } = await shopClient.query<ShopChannel>(ACTIVE_CHANNEL);
  assert.equal(activeChannel.customFields.modelBaseUrl, `http://models.test/assets/ml-models/${CHANNEL}/v1.0.0/`);
  assert.ok(activeChannel.customFields.modelLastTrained, 'modelLastTrained set by training.succeeded');

  let cherry = '';
  await t.test('a new product with a photo: productAdded annotation, new version with its label', async () => {
    cherry = await createProduct('Cherry');
    const annotations = await waitFor('the productAdded annotation', async () => {
      const a = (await channelModel()).metadata.annotations ?? {};
      return a['ml.dukarun.io/inventory-change'] === 'productAdded' && a;
    }, 10000);
    assert.ok(Date.parse(annotations['ml.dukarun.io/inventory-changed-at']) <= Date.now());
    await waitForShopVersion('1.0.1');
    assert.deepEqual(labelsOf('1.0.1'), [apple, banana, cherry].sort());
  });

  await t.test('a deleted product: productDeleted, new version without its label', async () => {
    await adminClient.query(DELETE_PRODUCT, { id: banana });
    await waitFor('the productDeleted annotation', async () => (await channelModel()).metadata.annotations?.['ml.dukarun.io/inventory-change'] === 'productDeleted', 10000);
    await waitForShopVersion('1.0.2');
    assert.deepEqual(labelsOf('1.0.2'), [apple, cherry].sort());
  });

  await t.test('a burst of 40 products: coalesced to about one patch per second, one training', async () => {
    const before = reporter.attempts;
    const started = Date.now();
    for (let i = 0; i < 40; i++) await createProduct(`Bulk ${i}`, i < 2);
    const seconds = (Date.now() - started) / 1000;
    await waitFor('the reporter to go idle', async () => reporter.pendingChannels().length === 0, 10000);
    const patches = reporter.attempts - before;
    assert.ok(patches <= Math.ceil(seconds) + 1, `${patches} patches for 40 changes in ${seconds.toFixed(1)} s`);
    console.log(`# burst: 40 product creations in ${seconds.toFixed(1)} s -> ${patches} annotation patches`);
    await waitForShopVersion('1.0.3');
    await sleep(4000);
    assert.equal(await shopVersion(), '1.0.3', 'one training for the burst');
    assert.equal(labelsOf('1.0.3').length, 4);
  });

  await t.test('autoRetrain off: the change is recorded, no training', async () => {
    await adminClient.query(UPDATE_CHANNEL, { input: { id: CHANNEL, customFields: { modelAutoRetrainEnabled: false } } });
    await waitFor('spec.autoRetrain false', async () => (await channelModel()).spec.autoRetrain === false, 10000);
    const before = (await channelModel()).metadata.annotations?.['ml.dukarun.io/inventory-changed-at'];
    await createProduct('Damson');
    await waitFor('the change annotation', async () => (await channelModel()).metadata.annotations?.['ml.dukarun.io/inventory-changed-at'] !== before, 10000);
    await sleep(5000); // debounce is 3 s
    assert.equal((await channelModel()).status?.modelVersion, '1.0.3');
    assert.equal(await shopVersion(), '1.0.3');
  });

  await t.test('retrain mutation and status query: refused without the permission', async () => {
    const { createRole } = await adminClient.query<{ createRole: { id: string } }>(CREATE_ROLE, {
      input: { code: 'catalog-editor', description: 'catalog only', permissions: ['ReadCatalog', 'UpdateCatalog'], channelIds: [CHANNEL] },
    });
    await adminClient.query(CREATE_ADMIN, {
      input: { firstName: 'Cat', lastName: 'Alog', emailAddress: 'cat@shop.test', password: 'pw-cat-1', roleIds: [createRole.id] },
    });
    await adminClient.asUserWithCredentials('cat@shop.test', 'pw-cat-1');
    await assert.rejects(adminClient.query(RETRAIN), /not currently authorized|FORBIDDEN/i);
    await assert.rejects(adminClient.query(STATUS), /not currently authorized|FORBIDDEN/i);
    await adminClient.asSuperAdmin();
    const { channelModelStatus } = await adminClient.query<{ channelModelStatus: Record<string, unknown> }>(STATUS);
    assert.equal(channelModelStatus.source, 'kubernetes');
    assert.equal(channelModelStatus.modelVersion, '1.0.3');
    assert.equal(channelModelStatus.autoRetrain, false);
    // The manual trigger trains even with autoRetrain off.
    const { retrainChannelModel } = await adminClient.query<{ retrainChannelModel: { requestedAt: string } }>(RETRAIN);
    assert.equal((await channelModel()).metadata.annotations?.['ml.dukarun.io/retrain-requested-at'], retrainChannelModel.requestedAt);
    await waitForShopVersion('1.0.4');
    assert.equal(labelsOf('1.0.4').length, 5, 'Damson is in the manually trained model');
    await adminClient.query(UPDATE_CHANNEL, { input: { id: CHANNEL, customFields: { modelAutoRetrainEnabled: true } } });
    await waitFor('spec.autoRetrain true', async () => (await channelModel()).spec.autoRetrain === true, 10000);
  });

  await t.test('forged, stale and replayed webhooks: 401 and nothing changed', async () => {
    const body = JSON.stringify({
      at: new Date().toISOString(), channelId: CHANNEL, error: null, message: 'forged', modelBaseUrl: 'http://evil.test/',
      modelVersion: '9.9.9', name: NAME, namespace: config.namespace, type: 'version.served',
    });
    const post = (headers: Record<string, string>, payload = body) =>
      fetch(`${base}/events`, { method: 'POST', body: payload, headers: { 'Content-Type': 'application/json', ...headers } });
    const sign = (key: string, payload = body, id = `msg_${randomUUID().replace(/-/g, '')}`, at = new Date()) => ({
      'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': new Webhook(key).sign(id, at, payload),
    });
    const guess = 'whsec_' + Buffer.from('not the key, not the key, not it').toString('base64');
    assert.equal((await post({})).status, 401, 'unsigned');
    assert.equal((await post(sign(guess))).status, 401, 'wrong key');
    assert.equal((await post(sign(config.webhookSecret, body, 'msg_stale', new Date(Date.now() - 301_000)))).status, 401, 'stale');
    // A genuine, older event (not applied: the channel shows newer), its replay, its retry.
    const old = JSON.stringify({ ...JSON.parse(body), at: '2000-01-01T00:00:00Z', modelVersion: '0.0.1' });
    const genuine = sign(config.webhookSecret, old, 'msg_genuine', new Date(Date.now() - 2000));
    assert.equal((await post(genuine, old)).status, 202, 'genuine but older than what the channel shows: not applied');
    assert.equal((await post(genuine, old)).status, 401, 'the same request again: replayed');
    assert.equal((await post(sign(config.webhookSecret, old, 'msg_genuine'), old)).status, 202, 'a retry (same id, new signature): acknowledged, not applied');
    assert.equal(await shopVersion(), '1.0.4');
  });

  await t.test('a second channel: assigning and removing a product reports to its own ChannelModel', async () => {
    const { zones } = await adminClient.query<{ zones: { items: { id: string }[] } }>(gql`query { zones { items { id } } }`);
    const { createChannel } = await adminClient.query<{ createChannel: { id: string } }>(gql`
      mutation CreateChannel($input: CreateChannelInput!) { createChannel(input: $input) { ... on Channel { id } ... on ErrorResult { message } } }
    `, { input: {
      code: 'pos-shop', token: 'pos-shop-token', defaultLanguageCode: 'en', defaultCurrencyCode: 'GBP', pricesIncludeTax: true,
      defaultShippingZoneId: zones.items[0].id, defaultTaxZoneId: zones.items[0].id,
    } });
    const second = createChannel.id;
    const secondName = `vendure-channel-${second.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`;
    await custom.createNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: config.namespace, plural: PLURAL,
      body: {
        apiVersion: `${GROUP}/${VERSION}`, kind: 'ChannelModel', metadata: { name: secondName },
        spec: { channelId: second, manifest: { url: `${base}/manifest/${second}` }, suspend: true, training: { gpus: 0 } },
      },
    });
    const annotations = async () =>
      ((await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: config.namespace, plural: PLURAL, name: secondName })) as {
        metadata: { annotations?: Record<string, string> };
      }).metadata.annotations ?? {};
    const manifestIds = async () => {
      const answer = await fetch(`${base}/manifest/${second}`, { headers: { Authorization: `Bearer ${config.manifestToken}` } });
      return ((await answer.json()) as { products: { id: string }[] }).products.map((p) => p.id);
    };
    assert.deepEqual(await manifestIds(), []);
    await adminClient.query(gql`
      mutation Assign($input: AssignProductsToChannelInput!) { assignProductsToChannel(input: $input) { id } }
    `, { input: { channelId: second, productIds: [apple] } });
    await waitFor('productAdded on the second channel', async () => (await annotations())['ml.dukarun.io/inventory-change'] === 'productAdded', 10000);
    assert.deepEqual(await manifestIds(), [apple]);
    await adminClient.query(gql`
      mutation Remove($input: RemoveProductsFromChannelInput!) { removeProductsFromChannel(input: $input) { id } }
    `, { input: { channelId: second, productIds: [apple] } });
    await waitFor('productDeleted on the second channel', async () => (await annotations())['ml.dukarun.io/inventory-change'] === 'productDeleted', 10000);
    assert.deepEqual(await manifestIds(), []);
  });

  await t.test('the Kubernetes API down: the shop keeps working, the change is retried, not lost', async () => {
    proxy.down();
    const started = Date.now();
    const elderberry = await createProduct('Elderberry');
    assert.ok(Date.now() - started < 5000, 'product creation does not wait for Kubernetes');
    await sleep(2500);
    assert.ok(reporter.pendingChannels().includes(CHANNEL), 'the change is still queued');
    const { channelModelStatus } = await adminClient.query<{ channelModelStatus: Record<string, unknown> }>(STATUS);
    assert.equal(channelModelStatus.source, 'channel', 'status falls back to the custom fields');
    assert.equal(channelModelStatus.modelVersion, '1.0.4');
    assert.equal(channelModelStatus.pendingChange, true);
    assert.equal(await shopVersion(), '1.0.4', 'the Shop API still answers');
    proxy.up();
    await waitFor('the queued change', async () => {
      const at = (await channelModel()).metadata.annotations?.['ml.dukarun.io/inventory-changed-at'];
      return at !== undefined && Date.parse(at) >= started;
    }, 15000);
    await waitForShopVersion('1.0.5');
    assert.ok(labelsOf('1.0.5').includes(elderberry));
  });
});
