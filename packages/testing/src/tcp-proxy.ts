import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback that a test controls, between a client and a server (or a
 * gateway and Redis):
 * - `blackhole()` stops carrying bytes both ways but keeps every socket open: to each
 *   end the other has vanished without a FIN, as with a pulled cable or a suspended
 *   laptop (a half-open connection);
 * - `cut()` destroys every connection at once (each end sees a reset or an end);
 * - `refuse()` makes new connections fail until `heal()`.
 * Bytes of one direction keep their order, as TCP does.
 */
export class TcpProxy implements AsyncDisposable {
  readonly #server: Server;
  readonly #pairs = new Set<{ client: Socket; upstream: Socket }>();
  #blackholed = false;
  #refusing = false;

  private constructor(
    server: Server,
    readonly targetPort: number,
    readonly targetHost: string,
  ) {
    this.#server = server;
  }

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const server = createServer();
    const proxy = new TcpProxy(server, targetPort, targetHost);
    server.on('connection', (client) => proxy.#pipe(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Open connection pairs. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Both directions go silent; sockets stay open (no FIN, no RST). New connections are held silent too. */
  blackhole(): void {
    this.#blackholed = true;
  }

  /** Destroys every open connection. */
  cut(): void {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  /** New connections are closed at once until `heal()`. */
  refuse(): void {
    this.#refusing = true;
  }

  /** Carries bytes again and accepts new connections (bytes swallowed while blackholed are gone). */
  heal(): void {
    this.#blackholed = false;
    this.#refusing = false;
  }

  #pipe(client: Socket): void {
    if (this.#refusing) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: this.targetHost, port: this.targetPort });
    const pair = { client, upstream };
    this.#pairs.add(pair);
    const end = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on('data', (chunk: Buffer) => {
        if (!this.#blackholed && !to.destroyed) to.write(chunk);
      });
      // While blackholed a FIN is swallowed too: the other end must not learn of it.
      from.on('end', () => {
        if (!this.#blackholed) end();
      });
      from.on('error', () => end());
      from.on('close', () => {
        if (!this.#blackholed) end();
      });
    }
  }

  async close(): Promise<void> {
    this.#blackholed = false;
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
