import { ModelStore } from './idb.js';
import {
  DownloadProgress,
  ModelLocation,
  ModelSyncError,
  StoredModel,
  SyncResult,
} from './types.js';
import { checkMetadata, checkModelJson, parseJson, sha256Hex, sha256OfEtag } from './verify.js';

export interface ModelSyncOptions {
  /** The channel (ChannelModel `spec.channelId`). */
  channelId: string;
  /** The model server, e.g. `https://models.shop.example`: `sync()` without a location reads its latest.json. */
  serverUrl?: string;
  /** IndexedDB database name. Default `channelmodel`. */
  dbName?: string;
  onProgress?: (progress: DownloadProgress) => void;
  /**
   * Called with a downloaded, verified version before it replaces the one in use: throw to refuse
   * it (e.g. load it with TF.js). The old version stays in use.
   */
  verifyLoad?: (model: StoredModel) => Promise<void>;
  /** Extra room to leave free, on top of the new version's size. Default 1 MiB. */
  quotaMarginBytes?: number;
  fetch?: typeof fetch;
  indexedDB?: IDBFactory;
}

interface Latest {
  channelId: string;
  version: string;
  modelBaseUrl: string;
}

const FILES = ['model.json', 'weights.bin', 'metadata.json'] as const;

/**
 * Keeps the channel's model in IndexedDB: `sync()` on login or on demand, `current()` offline.
 * A version is downloaded only when it differs from the cached one (equality, not order: a
 * rollback serves an older version), verified, stored in one transaction, and only then made
 * current; the version before it is kept, older ones dropped.
 */
export class ModelSync {
  readonly store: ModelStore;
  private readonly fetch: typeof fetch;
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: ModelSyncOptions) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(options.channelId)) throw new Error(`invalid channelId ${options.channelId}`);
    this.store = new ModelStore(options.dbName ?? 'channelmodel', options.indexedDB ?? indexedDB);
    this.fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** The version in use, from IndexedDB (works offline); undefined before the first sync. */
  async current(): Promise<StoredModel | undefined> {
    const pointer = await this.store.current(this.options.channelId);
    return pointer ? this.store.get(this.options.channelId, pointer.version) : undefined;
  }

  /**
   * Bring the cached model to `location` (from the Shop API) or to the server's latest.json.
   * Offline with a cached model: `{status: 'offline'}`. Offline without one: ModelSyncError 'offline'.
   * A failed download or verification leaves the cached model in use and rejects.
   */
  sync(location?: ModelLocation): Promise<SyncResult> {
    const run = this.running.then(() => this.withLock(() => this.syncNow(location)));
    this.running = run.catch(() => undefined);
    return run;
  }

  private withLock<T>(fn: () => Promise<T>): Promise<T> {
    const locks = (globalThis.navigator as Navigator | undefined)?.locks;
    if (!locks) return fn();
    return locks.request(`channelmodel-sync-${this.options.channelId}`, fn) as Promise<T>;
  }

  private async syncNow(location?: ModelLocation): Promise<SyncResult> {
    const { channelId } = this.options;
    const pointer = await this.store.current(channelId);
    let target: ModelLocation;
    try {
      target = location ?? (await this.latest());
    } catch (error) {
      if (error instanceof ModelSyncError && error.code !== 'offline') throw error;
      if (pointer) return { status: 'offline', version: pointer.version, bytesDownloaded: 0, error: String(error) };
      throw new ModelSyncError('offline', `no network and no cached model for channel ${channelId}`, error);
    }
    if (pointer?.version === target.modelVersion) {
      return { status: 'up-to-date', version: pointer.version, bytesDownloaded: 0 };
    }
    const cached = await this.store.get(channelId, target.modelVersion); // e.g. a rollback to the previous one
    let model: StoredModel;
    let bytesDownloaded = 0;
    if (cached) {
      model = cached;
    } else {
      try {
        ({ model, bytesDownloaded } = await this.download(target));
      } catch (error) {
        // Unreachable before anything arrived: offline, keep what we have. Anything else rejects
        // (a download cut off, a corrupt file), and what we have stays in use too.
        if (error instanceof ModelSyncError && error.code === 'offline' && pointer) {
          return { status: 'offline', version: pointer.version, bytesDownloaded: 0, error: error.message };
        }
        throw error;
      }
      await this.store.put(model);
    }
    if (this.options.verifyLoad) {
      try {
        await this.options.verifyLoad(model);
      } catch (error) {
        if (!cached) await this.store.delete(channelId, model.version);
        throw new ModelSyncError('load-failed', `model ${model.version} does not load: ${String(error)}`, error);
      }
    }
    await this.store.activate(channelId, model.version);
    const result: SyncResult = { status: 'updated', version: model.version, bytesDownloaded };
    if (pointer) result.previousVersion = pointer.version;
    return result;
  }

  private async latest(): Promise<ModelLocation> {
    const { serverUrl, channelId } = this.options;
    if (!serverUrl) throw new ModelSyncError('no-model', 'no location given and no serverUrl to read latest.json from');
    const url = new URL(`assets/ml-models/${encodeURIComponent(channelId)}/latest.json`, serverUrl.replace(/\/?$/, '/'));
    let response: Response;
    try {
      response = await this.fetch(url.href, { cache: 'no-cache', credentials: 'omit' });
    } catch (error) {
      throw new ModelSyncError('offline', `latest.json unreachable: ${String(error)}`, error);
    }
    if (response.status === 404) throw new ModelSyncError('no-model', `channel ${channelId} has no model yet`);
    if (!response.ok) throw new ModelSyncError('offline', `latest.json: HTTP ${response.status}`);
    const latest = parseJson(await response.text(), 'latest.json') as Partial<Latest>;
    if (typeof latest.version !== 'string' || typeof latest.modelBaseUrl !== 'string') {
      throw new ModelSyncError('invalid-model', 'latest.json has no version or modelBaseUrl');
    }
    return { modelVersion: latest.version, modelBaseUrl: new URL(latest.modelBaseUrl, url).href };
  }

  private async download(target: ModelLocation): Promise<{ model: StoredModel; bytesDownloaded: number }> {
    const base = target.modelBaseUrl.endsWith('/') ? target.modelBaseUrl : `${target.modelBaseUrl}/`;
    const version = target.modelVersion;
    let bytesDownloaded = 0;
    const get = async (file: (typeof FILES)[number], expected?: number, cache: RequestCache = 'default'): Promise<ArrayBuffer> => {
      let response: Response;
      try {
        response = await this.fetch(new URL(file, base).href, { credentials: 'omit', cache });
      } catch (error) {
        throw new ModelSyncError('offline', `${file} of ${version} unreachable: ${String(error)}`, error);
      }
      if (!response.ok) throw new ModelSyncError('download-failed', `${file} of ${version}: HTTP ${response.status}`);
      let body: ArrayBuffer;
      try {
        body = await this.readBody(response, version, file, expected);
      } catch (error) {
        throw new ModelSyncError('download-failed', `${file} of ${version} cut off: ${String(error)}`, error);
      }
      bytesDownloaded += body.byteLength;
      const sha = sha256OfEtag(response.headers.get('ETag'));
      if (sha && sha !== (await sha256Hex(body))) {
        // The browser's HTTP cache keeps a version's files forever (immutable): a copy corrupted
        // on the way would stay. Ask the server once more, past the cache.
        if (cache !== 'reload') return get(file, expected, 'reload');
        throw new ModelSyncError('invalid-model', `${file} of ${version} does not match its ETag (corrupted)`);
      }
      return body;
    };
    const text = (data: ArrayBuffer) => new TextDecoder().decode(data);
    const { model: modelJson, weightBytes } = checkModelJson(parseJson(text(await get('model.json')), 'model.json'));
    const metadata = checkMetadata(parseJson(text(await get('metadata.json')), 'metadata.json'), modelJson);
    await this.checkQuota(weightBytes);
    const weights = await get('weights.bin', weightBytes);
    if (weights.byteLength !== weightBytes) {
      throw new ModelSyncError('invalid-model', `weights.bin of ${version} has ${weights.byteLength} bytes, model.json needs ${weightBytes}`);
    }
    const model: StoredModel = {
      channelId: this.options.channelId, version, modelJson, weights, metadata,
      storedAt: new Date().toISOString(), bytes: bytesDownloaded,
    };
    return { model, bytesDownloaded };
  }

  private async readBody(response: Response, version: string, file: (typeof FILES)[number], expected?: number): Promise<ArrayBuffer> {
    const length = Number(response.headers.get('Content-Length') ?? NaN);
    const total = Number.isFinite(length) ? length : expected;
    const { onProgress } = this.options;
    if (!response.body || !onProgress) return response.arrayBuffer();
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let loaded = 0;
    onProgress({ version, file, loaded, total });
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.byteLength;
      onProgress({ version, file, loaded, total });
    }
    const out = new Uint8Array(loaded);
    let offset = 0;
    for (const chunk of chunks) {
      out.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return out.buffer;
  }

  private async checkQuota(weightBytes: number): Promise<void> {
    const storage = (globalThis.navigator as Navigator | undefined)?.storage;
    if (!storage?.estimate) return;
    const { quota, usage } = await storage.estimate();
    if (quota === undefined || usage === undefined) return;
    const needed = weightBytes + (this.options.quotaMarginBytes ?? 1024 * 1024);
    if (quota - usage < needed) {
      throw new ModelSyncError('quota', `not enough storage for the model: ${needed} bytes needed, ${quota - usage} free`);
    }
  }
}
