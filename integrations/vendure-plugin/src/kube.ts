import * as k8s from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from './constants';

/** The fields of a ChannelModel the plugin reads. */
export interface ChannelModelObject {
  metadata?: { name?: string; annotations?: Record<string, string> };
  spec?: { channelId?: string; autoRetrain?: boolean; suspend?: boolean };
  status?: {
    modelBaseUrl?: string | null;
    modelVersion?: string | null;
    lastTrained?: string | null;
    trainingStatus?: string | null;
    lastError?: string | null;
    trainAfter?: string | null;
  };
}

/** HTTP status of a failed API call, when the API answered. */
export function apiStatus(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function loadKubeConfig(source: k8s.KubeConfig | string | undefined): k8s.KubeConfig {
  if (source instanceof k8s.KubeConfig) return source;
  const kc = new k8s.KubeConfig();
  if (typeof source === 'string') kc.loadFromFile(source);
  else kc.loadFromDefault(); // KUBECONFIG or ~/.kube/config, else the Pod's ServiceAccount
  return kc;
}

/** Merge patches and reads of ChannelModels (RBAC: `patch`, and `get` for the status query). */
export class ChannelModelClient {
  private readonly api: k8s.CustomObjectsApi;

  constructor(kubeConfig: k8s.KubeConfig, private readonly namespace: string) {
    this.api = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  }

  async patch(name: string, body: object): Promise<void> {
    await this.api.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL, name, body },
      // 1.x sends application/json-patch+json by default; these bodies are merge patches.
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  }

  patchAnnotations(name: string, annotations: Record<string, string>): Promise<void> {
    return this.patch(name, { metadata: { annotations } });
  }

  async get(name: string): Promise<ChannelModelObject> {
    return (await this.api.getNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL, name,
    })) as ChannelModelObject;
  }
}
