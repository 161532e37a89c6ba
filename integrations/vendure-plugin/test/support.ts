import * as k8s from '@kubernetes/client-node';
import net from 'node:net';

/** A TCP proxy in front of the Kubernetes API: `down()` refuses and cuts connections, `up()` restores. */
export class ApiProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private isDown = false;
  port = 0;

  constructor(private readonly target: URL) {}

  async start(): Promise<this> {
    this.server = net.createServer((client) => {
      if (this.isDown) {
        client.destroy();
        return;
      }
      const upstream = net.connect(Number(this.target.port || (this.target.protocol === 'https:' ? 443 : 80)), this.target.hostname);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server!.address() as net.AddressInfo).port;
    return this;
  }

  down(): void {
    this.isDown = true;
    for (const socket of this.sockets) socket.destroy();
  }

  up(): void {
    this.isDown = false;
  }

  async close(): Promise<void> {
    this.down();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

/**
 * The test kubeconfig, optionally pointed at another server. The 1.x client refuses a plain
 * http:// API server unless the cluster skips TLS verification (there is no TLS to verify).
 */
export function kubeConfigFrom(path: string, server?: string): k8s.KubeConfig {
  const original = new k8s.KubeConfig();
  original.loadFromFile(path);
  const cluster = original.getCurrentCluster();
  if (!cluster) throw new Error(`no current cluster in ${path}`);
  const url = server ?? cluster.server;
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ ...cluster, server: url, skipTLSVerify: url.startsWith('http:') ? true : cluster.skipTLSVerify }],
    users: original.users,
    contexts: [{ name: 'test', cluster: cluster.name, user: original.getCurrentUser()?.name ?? '' }],
    currentContext: 'test',
  });
  return kc;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 30000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    await sleep(100);
  }
}

/** A 2x2 PNG: real image bytes for Vendure's asset handling. */
export const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFElEQVR4nGP4z8DAAMIM/////w8AH+4F+7C4l8kAAAAASUVORK5CYII=',
  'base64',
);
