import type { KubeConfig } from '@kubernetes/client-node';

/** Options of `ChannelModelPlugin.init()`. Secrets are read once and never logged. */
export interface ChannelModelPluginOptions {
  /** Namespace of the ChannelModels. */
  namespace: string;
  /**
   * Name of the ChannelModel of a Vendure channel (its internal ID, as a string).
   * Default: `vendure-channel-<id>` (lower-cased, other characters than a-z0-9 as `-`). The ChannelModel's `spec.channelId` must be the channel's ID.
   */
  channelModelName?: (channelId: string) => string;
  /** A KubeConfig, a kubeconfig file path, or (default) in-cluster config / KUBECONFIG / ~/.kube/config. */
  kubeConfig?: KubeConfig | string;
  /** The bearer token of the manifest endpoint: the value the ChannelModel's `spec.manifest.authSecretRef` holds. */
  manifestToken: string;
  /**
   * The operator's webhook key(s): the value `spec.notify.secretRef` names, `whsec_<base64>`
   * (several, whitespace-separated, while keys rotate), or a raw key.
   */
  webhookSecret: string | Buffer;
  /**
   * Absolute URL of an asset's image for training, from its `source` (the AssetServerPlugin's URL).
   * Default: `assetUrlPrefix + source + assetUrlSuffix`.
   */
  assetUrl?: (source: string) => string;
  /** E.g. `https://shop.example.com/assets/` (required unless `assetUrl` is given). */
  assetUrlPrefix?: string;
  /** E.g. `?preset=large` (the AssetServerPlugin's 800 px preset keeps enough for 224-pixel crops). Default: '' (original). */
  assetUrlSuffix?: string;
  /** Route prefix of the REST endpoints (manifest, webhook). Default `channelmodel`. */
  routePrefix?: string;
  /** At most one annotation patch per channel per this many ms. Default 1000. */
  coalesceMs?: number;
  /** Longest wait between retries of a failed patch. Default 30000 ms. */
  maxRetryDelayMs?: number;
  /** Products per database page while streaming the manifest. Default 500. */
  manifestPageSize?: number;
}

export type ResolvedOptions = Required<Omit<ChannelModelPluginOptions, 'kubeConfig' | 'assetUrlPrefix' | 'assetUrlSuffix'>> &
  Pick<ChannelModelPluginOptions, 'kubeConfig'>;

export function resolveOptions(options: ChannelModelPluginOptions): ResolvedOptions {
  if (!options.manifestToken) throw new Error('ChannelModelPlugin: manifestToken is required');
  if (!options.webhookSecret || options.webhookSecret.length === 0) {
    throw new Error('ChannelModelPlugin: webhookSecret is required');
  }
  const prefix = options.assetUrlPrefix;
  const suffix = options.assetUrlSuffix ?? '';
  if (!options.assetUrl && !prefix) throw new Error('ChannelModelPlugin: assetUrl or assetUrlPrefix is required');
  return {
    namespace: options.namespace,
    channelModelName: options.channelModelName ?? defaultChannelModelName,
    kubeConfig: options.kubeConfig,
    manifestToken: options.manifestToken,
    webhookSecret: options.webhookSecret,
    assetUrl: options.assetUrl ?? ((source) => `${prefix}${source}${suffix}`),
    routePrefix: (options.routePrefix ?? 'channelmodel').replace(/^\/+|\/+$/g, ''),
    coalesceMs: options.coalesceMs ?? 1000,
    maxRetryDelayMs: options.maxRetryDelayMs ?? 30000,
    manifestPageSize: options.manifestPageSize ?? 500,
  };
}

/** `vendure-channel-<id>`, made a valid Kubernetes name. */
export function defaultChannelModelName(channelId: string): string {
  return `vendure-channel-${channelId.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`;
}
