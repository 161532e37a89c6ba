import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import {
  AssetEvent,
  Channel,
  ChannelEvent,
  ChannelService,
  ConfigService,
  EventBus,
  ID,
  Logger,
  Product,
  ProductChannelEvent,
  ProductEvent,
  ProductVariantEvent,
  RequestContextService,
  TransactionalConnection,
} from '@vendure/core';
import { ChangeReporter } from './change-reporter';
import { ChangeKind, loggerCtx, PLUGIN_OPTIONS, RETRAIN_REQUESTED_AT } from './constants';
import { ChannelModelFields } from './custom-fields';
import { apiStatus, ChannelModelClient, loadKubeConfig } from './kube';
import { ResolvedOptions } from './options';
import { ChannelModelEvent } from './webhook';

/** `trainingStatus` custom field per event type. */
const STATUS_OF_EVENT: Record<string, string> = {
  'training.queued': 'Queued',
  'training.started': 'Training',
  'training.succeeded': 'Succeeded',
  'training.failed': 'Failed',
  'training.rejected': 'Failed',
};

export interface ChannelModelStatusView {
  channelId: string;
  name: string;
  source: 'kubernetes' | 'channel';
  modelVersion: string | null;
  modelBaseUrl: string | null;
  trainingStatus: string | null;
  lastTrained: string | null;
  lastError: string | null;
  autoRetrain: boolean | null;
  pendingChange: boolean;
}

/** What a product update input says about what the model must know. */
export function productUpdateKind(input: unknown): ChangeKind | undefined {
  const value = (input ?? {}) as { enabled?: unknown; assetIds?: unknown; featuredAssetId?: unknown };
  if (value.enabled === false) return 'productDeleted'; // the manifest leaves out disabled products
  if (value.enabled === true) return 'productAdded';
  if (value.assetIds !== undefined || value.featuredAssetId !== undefined) return 'imageChanged';
  return undefined; // renames, prices, facets: labels are product IDs, nothing to retrain
}

function variantInputsTouchAssets(input: unknown): boolean {
  const inputs = Array.isArray(input) ? (input as unknown[]) : [];
  return inputs.some((item) => {
    const value = (item ?? {}) as { assetIds?: unknown; featuredAssetId?: unknown; enabled?: unknown };
    return value.assetIds !== undefined || value.featuredAssetId !== undefined || value.enabled !== undefined;
  });
}

@Injectable()
export class ChannelModelService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly client: ChannelModelClient;
  readonly reporter: ChangeReporter;
  private readonly desiredAutoRetrain = new Map<string, boolean>();
  private readonly autoRetrainTimers = new Map<string, NodeJS.Timeout>();

  constructor(
    @Inject(PLUGIN_OPTIONS) private readonly options: ResolvedOptions,
    private readonly eventBus: EventBus,
    private readonly channelService: ChannelService,
    private readonly connection: TransactionalConnection,
    private readonly requestContextService: RequestContextService,
    private readonly configService: ConfigService,
  ) {
    this.client = new ChannelModelClient(loadKubeConfig(options.kubeConfig), options.namespace);
    this.reporter = new ChangeReporter(
      (channelId, annotations) => this.client.patchAnnotations(this.nameOf(channelId), annotations),
      {
        intervalMs: options.coalesceMs,
        maxRetryDelayMs: options.maxRetryDelayMs,
        onError: (channelId, error, retryIn) => {
          const what = `ChannelModel ${options.namespace}/${this.nameOf(channelId)}`;
          if (retryIn === undefined) Logger.verbose(`${what} not found: change not reported`, loggerCtx);
          else Logger.warn(`${what}: patch failed (${describe(error)}), retrying in ${retryIn} ms`, loggerCtx);
        },
      },
    );
  }

  onApplicationBootstrap(): void {
    // EventBus.ofType delivers events after their transaction committed: the manifest shows them.
    this.eventBus.ofType(ProductEvent).subscribe((event) => {
      const kind =
        event.type === 'created' ? 'productAdded' : event.type === 'deleted' ? 'productDeleted' : productUpdateKind(event.input);
      if (kind) void this.reportForProduct(event.ctx.channelId, event.entity, kind);
    });
    this.eventBus.ofType(ProductChannelEvent).subscribe((event) => {
      this.report(event.channelId, event.type === 'assigned' ? 'productAdded' : 'productDeleted');
    });
    this.eventBus.ofType(ProductVariantEvent).subscribe((event) => {
      if (event.type === 'updated' && variantInputsTouchAssets(event.input)) this.report(event.ctx.channelId, 'imageChanged');
      if (event.type === 'deleted') {
        // Deleting a product deletes its variants right after: that is a productDeleted, not an image change.
        void this.anyProductAlive(event.entity.map((variant) => variant.productId)).then((alive) => {
          if (alive) this.report(event.ctx.channelId, 'imageChanged');
        });
      }
    });
    this.eventBus.ofType(AssetEvent).subscribe((event) => {
      // Linking and unlinking images are Product/ProductVariant events; a deleted asset
      // disappears from every product of the channel that used it.
      if (event.type === 'deleted') this.report(event.ctx.channelId, 'imageChanged');
    });
    this.eventBus.ofType(ChannelEvent).subscribe((event) => {
      const input = event.input as { customFields?: { modelAutoRetrainEnabled?: unknown } } | undefined;
      const enabled = input?.customFields?.modelAutoRetrainEnabled;
      if (event.type === 'updated' && typeof enabled === 'boolean') this.setAutoRetrain(this.encodeId(event.entity.id), enabled);
    });
  }

  async onApplicationShutdown(): Promise<void> {
    // One last attempt for queued changes, bounded: shutdown never hangs on the API.
    await Promise.race([this.reporter.flushAll().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    this.reporter.close();
    for (const timer of this.autoRetrainTimers.values()) clearTimeout(timer);
  }

  nameOf(channelId: string): string {
    return this.options.channelModelName(channelId);
  }

  /** The ID the outside world (Admin/Shop API, ChannelModel, labels) uses for an entity. */
  encodeId(id: ID): string {
    return String(this.idStrategy().encodeId(id as never));
  }

  decodeId(id: string): ID {
    return this.idStrategy().decodeId(id) as ID;
  }

  report(channelId: ID, kind: ChangeKind): void {
    this.reporter.report(this.encodeId(channelId), kind);
  }

  /** A product change matters to every channel the product is in (the request's channel at least). */
  private async reportForProduct(ctxChannelId: ID, product: Product, kind: ChangeKind): Promise<void> {
    const at = new Date();
    let channels: Pick<Channel, 'id'>[] = Array.isArray(product.channels) ? product.channels : [];
    if (channels.length === 0) {
      channels = await this.connection.rawConnection
        .createQueryBuilder()
        .relation(Product, 'channels')
        .of(product.id)
        .loadMany<Channel>()
        .catch(() => []);
    }
    const ids = new Set<string>([this.encodeId(ctxChannelId), ...channels.map((channel) => this.encodeId(channel.id))]);
    for (const id of ids) this.reporter.report(id, kind, at);
  }

  /** The manual trigger: written at once, errors go to the caller. */
  async retrainNow(channelId: string): Promise<string> {
    const at = new Date().toISOString();
    await this.client.patchAnnotations(this.nameOf(channelId), { [RETRAIN_REQUESTED_AT]: at });
    return at;
  }

  /** spec.autoRetrain follows the custom field; retried in the background until the API takes it. */
  setAutoRetrain(channelId: string, enabled: boolean, attempt = 0): void {
    this.desiredAutoRetrain.set(channelId, enabled);
    clearTimeout(this.autoRetrainTimers.get(channelId));
    this.autoRetrainTimers.delete(channelId);
    this.client.patch(this.nameOf(channelId), { spec: { autoRetrain: enabled } }).then(
      () => {
        if (this.desiredAutoRetrain.get(channelId) === enabled) this.desiredAutoRetrain.delete(channelId);
      },
      (error: unknown) => {
        if (apiStatus(error) === 404 || this.desiredAutoRetrain.get(channelId) !== enabled) return;
        const retryIn = Math.min(this.options.maxRetryDelayMs, 1000 * 2 ** attempt);
        Logger.warn(`spec.autoRetrain of ${this.nameOf(channelId)} not set (${describe(error)}), retrying in ${retryIn} ms`, loggerCtx);
        const timer = setTimeout(() => this.setAutoRetrain(channelId, enabled, attempt + 1), retryIn);
        timer.unref?.();
        this.autoRetrainTimers.set(channelId, timer);
      },
    );
  }

  async status(channelId: string): Promise<ChannelModelStatusView> {
    const name = this.nameOf(channelId);
    const pendingChange = this.reporter.pendingChannels().includes(channelId);
    try {
      const object = await this.client.get(name);
      const s = object.status ?? {};
      return {
        channelId, name, source: 'kubernetes', pendingChange,
        modelVersion: s.modelVersion ?? null, modelBaseUrl: s.modelBaseUrl ?? null,
        trainingStatus: s.trainingStatus ?? null, lastTrained: s.lastTrained ?? null,
        lastError: s.lastError ?? null, autoRetrain: object.spec?.autoRetrain ?? true,
      };
    } catch (error) {
      if (apiStatus(error) === 404) throw new Error(`no ChannelModel ${this.options.namespace}/${name} for channel ${channelId}`);
      // The Kubernetes API is unreachable: answer with what the webhooks last told us.
      const channel = await this.findChannel(channelId);
      const fields = (channel?.customFields ?? {}) as ChannelModelFields;
      return {
        channelId, name, source: 'channel', pendingChange,
        modelVersion: fields.modelVersion ?? null, modelBaseUrl: fields.modelBaseUrl ?? null,
        trainingStatus: fields.modelTrainingStatus ?? null,
        lastTrained: fields.modelLastTrained ? new Date(fields.modelLastTrained).toISOString() : null,
        lastError: describe(error), autoRetrain: fields.modelAutoRetrainEnabled ?? null,
      };
    }
  }

  /** A verified operator event: keep the channel's custom fields current. False when it was not applied. */
  async applyEvent(event: ChannelModelEvent): Promise<boolean> {
    const channel = await this.findChannel(event.channelId);
    if (!channel || this.nameOf(event.channelId) !== event.name) return false;
    const fields = (channel.customFields ?? {}) as ChannelModelFields;
    if (fields.modelStatusAt && event.at < fields.modelStatusAt) return false; // reordered or old
    const update: ChannelModelFields = { modelStatusAt: event.at };
    if (event.modelVersion !== undefined) update.modelVersion = event.modelVersion;
    if (event.modelBaseUrl !== undefined) update.modelBaseUrl = event.modelBaseUrl;
    const status = STATUS_OF_EVENT[event.type];
    if (status) update.modelTrainingStatus = status;
    if (event.type === 'training.succeeded') update.modelLastTrained = new Date(event.at);
    const ctx = await this.requestContextService.create({ apiType: 'admin' }); // no session: a system update
    await this.channelService.update(ctx, { id: channel.id, customFields: update } as never);
    return true;
  }

  private async anyProductAlive(productIds: ID[]): Promise<boolean> {
    if (productIds.length === 0) return false;
    const alive = await this.connection.rawConnection
      .getRepository(Product)
      .createQueryBuilder('product')
      .whereInIds([...new Set(productIds)])
      .andWhere('product.deletedAt IS NULL')
      .getCount()
      .catch(() => 1); // when in doubt, report
    return alive > 0;
  }

  private async findChannel(channelId: string): Promise<Channel | undefined> {
    let id: ID;
    try {
      id = this.decodeId(channelId);
    } catch {
      return undefined;
    }
    const channel = await this.connection.rawConnection.getRepository(Channel).findOne({ where: { id } });
    return channel ?? undefined;
  }

  private idStrategy(): { encodeId: (id: never) => string; decodeId: (id: string) => unknown } {
    const strategy = this.configService.entityOptions.entityIdStrategy ?? this.configService.entityIdStrategy;
    return strategy as unknown as { encodeId: (id: never) => string; decodeId: (id: string) => unknown };
  }
}

function describe(error: unknown): string {
  const code = apiStatus(error);
  if (code !== undefined) return `HTTP ${code}`;
  return error instanceof Error ? error.message.split('\n')[0].slice(0, 200) : String(error).slice(0, 200);
}
