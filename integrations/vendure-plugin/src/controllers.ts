import { Controller, Get, Inject, Param, Post, Req, Res } from '@nestjs/common';
import { Channel, Logger, TransactionalConnection } from '@vendure/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerMatches } from './auth';
import { loggerCtx, PLUGIN_OPTIONS } from './constants';
import { manifestPages } from './manifest';
import { ResolvedOptions } from './options';
import { ChannelModelService } from './service';
import { parseEvent, WebhookVerifier } from './webhook';

type RawRequest = IncomingMessage & { body?: unknown };

function send(res: ServerResponse, status: number, body?: object): void {
  res.statusCode = status;
  if (body) {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(body));
  } else {
    res.end();
  }
}

/** Waits when the socket's buffer is full, so 20,000 products stream in constant memory. */
function write(res: ServerResponse, chunk: string): Promise<void> | undefined {
  if (res.write(chunk)) return undefined;
  return new Promise((resolve) => res.once('drain', resolve));
}

/**
 * `GET /<routePrefix>/manifest/:channelId` (the ChannelModel's `spec.manifest.url`) and
 * `POST /<routePrefix>/events` (its `spec.notify.webhookUrl`). Nest reads the route prefix from
 * the class decorator, so `ChannelModelPlugin.init()` sets it via `Reflect` before bootstrap.
 */
@Controller('channelmodel')
export class ChannelModelController {
  private readonly verifier: WebhookVerifier;

  constructor(
    @Inject(PLUGIN_OPTIONS) private readonly options: ResolvedOptions,
    private readonly connection: TransactionalConnection,
    private readonly service: ChannelModelService,
  ) {
    this.verifier = new WebhookVerifier(options.webhookSecret);
  }

  @Get('manifest/:channelId')
  async manifest(@Param('channelId') channelId: string, @Req() req: RawRequest, @Res() res: ServerResponse): Promise<void> {
    if (!bearerMatches(req.headers.authorization, this.options.manifestToken)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      return send(res, 401, { error: 'unauthorized' });
    }
    let internalId: Channel['id'];
    try {
      internalId = this.service.decodeId(channelId);
    } catch {
      return send(res, 404, { error: 'no such channel' });
    }
    const channel = await this.connection.rawConnection.getRepository(Channel).findOne({ where: { id: internalId } });
    if (!channel) return send(res, 404, { error: 'no such channel' });
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Cache-Control', 'no-store');
    try {
      await write(res, `{"channelId":${JSON.stringify(channelId)},"products":[`);
      let first = true;
      for await (const page of manifestPages(this.connection, channel.id, this.options.manifestPageSize)) {
        let chunk = '';
        for (const product of page) {
          const entry = {
            id: this.service.encodeId(product.id),
            images: product.sources.map((source) => this.options.assetUrl(source)),
          };
          chunk += (first ? '' : ',') + JSON.stringify(entry);
          first = false;
        }
        await write(res, chunk);
      }
      res.end(']}');
    } catch (error) {
      // Cut the response: a truncated manifest is invalid JSON and fails the run loudly.
      Logger.error(`manifest of channel ${channelId} failed: ${String(error)}`, loggerCtx);
      res.destroy(error as Error);
    }
  }

  @Post('events')
  async events(@Req() req: RawRequest, @Res() res: ServerResponse): Promise<void> {
    const raw = Buffer.isBuffer(req.body) ? req.body : undefined;
    if (!raw) return send(res, 400, { error: 'raw body expected' });
    const verdict = this.verifier.verify(raw, req.headers);
    if (verdict === 'duplicate') return send(res, 202); // a retry of an event already handled
    if (verdict !== 'ok') {
      Logger.warn(`refused a ChannelModel webhook: ${verdict}`, loggerCtx);
      return send(res, 401, { error: verdict });
    }
    const event = parseEvent(raw);
    if (!event) return send(res, 400, { error: 'not a ChannelModel event' });
    try {
      const applied = await this.service.applyEvent(event);
      this.verifier.handled(req.headers);
      return send(res, applied ? 204 : 202);
    } catch (error) {
      Logger.error(`ChannelModel event ${event.type} for channel ${event.channelId} not applied: ${String(error)}`, loggerCtx);
      return send(res, 500); // the operator retries 5xx
    }
  }
}

/** Gives the webhook route its raw bytes before Nest's JSON parser runs (the signature covers them). */
export function rawBodyMiddleware(limitBytes = 1024 * 1024) {
  return function channelModelRawBody(req: RawRequest & { _body?: boolean }, res: ServerResponse, next: (error?: unknown) => void): void {
    if (req.method !== 'POST') return next();
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes && !failed) {
        failed = true;
        send(res, 413, { error: 'too large' });
        req.destroy();
      } else if (!failed) chunks.push(chunk);
    });
    req.on('end', () => {
      if (failed) return;
      req.body = Buffer.concat(chunks);
      req._body = true; // body-parser: already parsed
      next();
    });
    req.on('error', (error) => {
      if (!failed) next(error);
    });
  };
}
