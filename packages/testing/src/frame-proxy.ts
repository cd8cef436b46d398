import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';

/**
 * What to do with one server → client message: pass it as it is, pass another text in
 * its place (a corrupted frame), or drop it (a frame lost on the way).
 */
export type FrameVerdict = { readonly action: 'pass' } | { readonly action: 'replace'; readonly text: string } | { readonly action: 'drop' };

/** One server → client message the proxy handled, in order, with what it did. */
export interface FrameRecord {
  readonly at: number;
  readonly text: string;
  readonly action: FrameVerdict['action'];
}

/**
 * A WebSocket proxy on loopback that sees whole messages: every client connection gets
 * its own connection to the gateway, client → server messages pass untouched, and each
 * server → client message goes through `filter` (which the test may swap at any time).
 * Unlike the TCP proxy it can lose or alter one message and keep the socket healthy,
 * as a buggy intermediary or a lost live frame would.
 */
export class FrameProxy implements AsyncDisposable {
  readonly #wss: WebSocketServer;
  readonly #sockets = new Set<WebSocket>();
  /** Every server → client message, per client connection in the order they connected. */
  readonly frames: FrameRecord[][] = [];
  filter: (text: string) => FrameVerdict = () => ({ action: 'pass' });

  private constructor(
    wss: WebSocketServer,
    readonly target: string,
  ) {
    this.#wss = wss;
  }

  /** `target`: the gateway's ws base, e.g. `ws://127.0.0.1:8000`; clients connect to `url` + the same path and query. */
  static async start(target: string): Promise<FrameProxy> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    const proxy = new FrameProxy(wss, target);
    wss.on('connection', (client, req) => proxy.#relay(client, req.url ?? '/ws'));
    return proxy;
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.#wss.address() as AddressInfo).port}`;
  }

  #relay(client: WebSocket, path: string): void {
    const upstream = new WebSocket(this.target + path);
    const log: FrameRecord[] = [];
    this.frames.push(log);
    this.#sockets.add(client).add(upstream);
    const early: string[] = [];
    upstream.on('open', () => {
      for (const text of early.splice(0)) upstream.send(text);
    });
    client.on('message', (data: RawData) => {
      const text = textOf(data);
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else early.push(text);
    });
    upstream.on('message', (data: RawData) => {
      const text = textOf(data);
      const verdict = this.filter(text);
      log.push({ at: performance.now(), text, action: verdict.action });
      if (verdict.action === 'drop' || client.readyState !== WebSocket.OPEN) return;
      client.send(verdict.action === 'replace' ? verdict.text : text);
    });
    const end = (socket: WebSocket, code: number) => {
      if (socket.readyState === WebSocket.OPEN) socket.close(code === 1005 || code === 1006 ? 1000 : code);
      else if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
    };
    client.on('close', (code) => end(upstream, code));
    upstream.on('close', (code) => end(client, code));
    client.on('error', () => upstream.terminate());
    upstream.on('error', () => client.terminate());
    for (const socket of [client, upstream]) socket.on('close', () => this.#sockets.delete(socket));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const socket of this.#sockets) socket.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

function textOf(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data).toString('utf8');
}
