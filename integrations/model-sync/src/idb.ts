import type { StoredModel } from './types.js';

const VERSIONS = 'versions';
const CURRENT = 'current';

/** The pointer to the version in use, and the one before it (kept for one sync, then dropped). */
export interface CurrentRecord {
  channelId: string;
  version: string;
  previous?: string;
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });
}

/** IndexedDB: `versions` keyed by [channelId, version], `current` keyed by channelId. */
export class ModelStore {
  private db?: Promise<IDBDatabase>;

  constructor(private readonly name: string, private readonly factory: IDBFactory = indexedDB) {}

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = this.factory.open(this.name, 1);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains(VERSIONS)) db.createObjectStore(VERSIONS, { keyPath: ['channelId', 'version'] });
        if (!db.objectStoreNames.contains(CURRENT)) db.createObjectStore(CURRENT, { keyPath: 'channelId' });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return this.db;
  }

  async current(channelId: string): Promise<CurrentRecord | undefined> {
    const db = await this.open();
    return request<CurrentRecord | undefined>(db.transaction(CURRENT).objectStore(CURRENT).get(channelId));
  }

  async get(channelId: string, version: string): Promise<StoredModel | undefined> {
    const db = await this.open();
    return request<StoredModel | undefined>(db.transaction(VERSIONS).objectStore(VERSIONS).get([channelId, version]));
  }

  /** The complete version in one transaction: all three files or none. Not yet in use. */
  async put(model: StoredModel): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(VERSIONS, 'readwrite');
    tx.objectStore(VERSIONS).put(model);
    await done(tx);
  }

  async delete(channelId: string, version: string): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(VERSIONS, 'readwrite');
    tx.objectStore(VERSIONS).delete([channelId, version]);
    await done(tx);
  }

  /** The swap: point `current` at `version` and drop every version but it and the one before, atomically. */
  async activate(channelId: string, version: string): Promise<CurrentRecord> {
    const db = await this.open();
    const tx = db.transaction([VERSIONS, CURRENT], 'readwrite');
    const currentStore = tx.objectStore(CURRENT);
    const versions = tx.objectStore(VERSIONS);
    const before = await request<CurrentRecord | undefined>(currentStore.get(channelId));
    const previous = before && before.version !== version ? before.version : before?.previous;
    const record: CurrentRecord = previous ? { channelId, version, previous } : { channelId, version };
    currentStore.put(record);
    const range = IDBKeyRange.bound([channelId, ''], [channelId, '\uffff']);
    const keys = await request(versions.getAllKeys(range));
    for (const key of keys) {
      const keyVersion = (key as [string, string])[1];
      if (keyVersion !== version && keyVersion !== previous) versions.delete(key);
    }
    await done(tx);
    return record;
  }

  async versions(channelId: string): Promise<string[]> {
    const db = await this.open();
    const range = IDBKeyRange.bound([channelId, ''], [channelId, '\uffff']);
    const keys = await request(db.transaction(VERSIONS).objectStore(VERSIONS).getAllKeys(range));
    return keys.map((key) => (key as [string, string])[1]);
  }

  close(): void {
    void this.db?.then((db) => db.close());
    this.db = undefined;
  }
}
