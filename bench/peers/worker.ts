/**
 * A client worker: opens its share of the bench's clients (TradeSync protocol over
 * plain `ws`, a raw `ws`, or `socket.io-client`), records each event's latency from
 * its scheduled publish time, checks TradeSync's sequence numbers and offsets, and
 * runs the reconnect storm. Driven over IPC by `bench/run.ts` (forked, never inside a
 * server under test).
 */
import { WebSocket } from 'ws';
import { io, type Socket } from 'socket.io-client';
import { wsconnect, type NatsConnection } from '@nats-io/nats-core';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { natsSubject, newHistogram, now, encodeHistogram, type ClientSpec, type System, type WorkerCommand, type WorkerReply } from './common.js';
import { isLiveFrame, offsets, scheds, sequenceNumber } from './scan.js';

/** What the worker counts, over all its clients. */
const stats = { received: 0, seqErrors: 0, gaps: 0, dups: 0, closedByServer: 0 };
let histogram = newHistogram();
let windowStart = Infinity;
let windowEnd = -Infinity;

function record(sched: number): void {
  if (!(sched >= windowStart && sched < windowEnd)) return;
  stats.received++;
  histogram.recordValue(Math.max(1, Math.round((now() - sched) * 1000)));
}

interface BenchClient {
  /** Opens the socket and joins the stream or room; true when the server says it resumed. */
  open(): Promise<boolean>;
  /** Drops the socket without a goodbye (the server sees it vanish). */
  cut(): void;
  close(): void;
}

const WS_OPTIONS = { perMessageDeflate: false, skipUTF8Validation: true } as const;

/** What the two plain-`ws` clients share: the socket, and telling our own cuts from the server's closes. */
abstract class WsClient implements BenchClient {
  protected ws: WebSocket | undefined;
  protected readonly found: number[] = [];
  #cutting = false;

  abstract open(): Promise<boolean>;

  /** Opens a socket; a close we did not cause counts as closed by the server. */
  protected connect(url: string): WebSocket {
    this.#cutting = false;
    const ws = new WebSocket(url, WS_OPTIONS);
    this.ws = ws;
    ws.on('close', () => {
      // A socket we cut closes after its replacement is already opening: not the server's doing.
      if (!this.#cutting && ws === this.ws) stats.closedByServer++;
    });
    return ws;
  }

  cut(): void {
    this.#cutting = true;
    this.ws?.terminate();
  }

  close(): void {
    this.#cutting = true;
    this.ws?.close();
  }
}

/** The TradeSync wire protocol, by hand: subscribe, then resume with `since` after a cut. */
class TradeSyncClient extends WsClient {
  #seq = -1;
  #epoch: string | undefined;
  #offset = 0;

  constructor(
    private readonly port: number,
    private readonly stream: string,
  ) {
    super();
  }

  open(): Promise<boolean> {
    this.#seq = -1;
    const ws = this.connect(`ws://127.0.0.1:${this.port}/ws`);
    return new Promise<boolean>((resolve, reject) => {
      let subscribed = false;
      ws.on('message', (buf: Buffer) => {
        const seq = sequenceNumber(buf);
        if (seq !== this.#seq + 1) stats.seqErrors++;
        this.#seq = seq;
        if (isLiveFrame(buf)) {
          this.found.length = 0;
          for (const offset of offsets(buf, this.found)) {
            if (offset === this.#offset + 1) this.#offset = offset;
            else if (offset <= this.#offset) stats.dups++;
            else {
              stats.gaps++;
              this.#offset = offset;
            }
          }
          this.found.length = 0;
          for (const sched of scheds(buf, this.found)) record(sched);
          return;
        }
        const msg = JSON.parse(buf.toString()) as { type: string; epoch?: string; offset?: number; recovered?: boolean; error?: { message: string } };
        if (msg.type === 'connected') {
          const since = this.#epoch === undefined ? undefined : { epoch: this.#epoch, offset: this.#offset };
          ws.send(JSON.stringify({ id: 'sub', type: 'subscribe', data: { stream: this.stream, since } }));
        } else if (msg.type === 'subscribed') {
          this.#epoch = msg.epoch;
          this.#offset = msg.offset ?? 0;
          subscribed = true;
          resolve(msg.recovered === true);
        } else if (msg.type === 'error' && !subscribed) {
          reject(new Error(msg.error?.message ?? 'error'));
        }
      });
      ws.on('error', (err) => {
        if (!subscribed) reject(err);
      });
      ws.on('close', () => {
        if (!subscribed) reject(new Error('closed before subscribed'));
      });
    });
  }
}

/** The floor: a socket in a room, no protocol. */
class RawClient extends WsClient {
  constructor(
    private readonly port: number,
    private readonly room: string,
  ) {
    super();
  }

  open(): Promise<boolean> {
    const ws = this.connect(`ws://127.0.0.1:${this.port}/?room=${encodeURIComponent(this.room)}`);
    ws.on('message', (buf: Buffer) => {
      this.found.length = 0;
      for (const sched of scheds(buf, this.found)) record(sched);
    });
    return new Promise<boolean>((resolve, reject) => {
      ws.once('open', () => resolve(false));
      ws.once('error', reject);
    });
  }
}

/** Socket.IO with its connection state recovery; reconnects at once (no backoff) like the others here. */
class SocketIoClient implements BenchClient {
  #socket: Socket | undefined;
  #cutting = false;

  constructor(private readonly port: number, private readonly room: string) {}

  open(): Promise<boolean> {
    if (this.#socket) {
      // After a cut the manager reconnects by itself; wait for it.
      const socket = this.#socket;
      return new Promise((resolve) => socket.once('connect', () => {
        this.#cutting = false;
        resolve(socket.recovered);
      }));
    }
    const socket = io(`http://127.0.0.1:${this.port}`, {
      transports: ['websocket'],
      forceNew: true,
      query: { room: this.room },
      reconnectionDelay: 1,
      reconnectionDelayMax: 1,
      randomizationFactor: 0,
    });
    this.#socket = socket;
    socket.on('event', (event: { data: { sched: number } }) => record(event.data.sched));
    socket.on('disconnect', () => {
      if (!this.#cutting) stats.closedByServer++;
    });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(socket.recovered));
      socket.once('connect_error', reject);
    });
  }

  cut(): void {
    this.#cutting = true;
    // Closing the transport (not `socket.disconnect()`, which ends the session) is a
    // lost connection to both ends: the client reconnects and the server recovers.
    this.#socket?.io.engine.close();
  }

  close(): void {
    this.#cutting = true;
    this.#socket?.disconnect();
  }
}

// nats.js's WebSocket transport uses the global WebSocket, which Node 20 has only behind a flag.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

/** What the two NATS clients share: the WebSocket connection, telling our own closes from the server's, and reading `sched`s. */
abstract class NatsBenchClient implements BenchClient {
  #nc: NatsConnection | undefined;
  /** Connections this client closed itself: their end is not the server's doing. */
  readonly #ours = new WeakSet<NatsConnection>();
  readonly #found: number[] = [];

  constructor(
    private readonly port: number,
    protected readonly stream: string,
  ) {}

  abstract open(): Promise<boolean>;

  protected async connect(): Promise<NatsConnection> {
    const nc = await wsconnect({ servers: `ws://127.0.0.1:${this.port}`, reconnect: false });
    this.#nc = nc;
    void nc.closed().then(() => {
      if (!this.#ours.has(nc)) stats.closedByServer++;
    });
    return nc;
  }

  protected received(data: Uint8Array): void {
    this.#found.length = 0;
    for (const sched of scheds(Buffer.from(data.buffer, data.byteOffset, data.byteLength), this.#found)) record(sched);
  }

  cut(): void {
    const nc = this.#nc;
    if (!nc) return;
    this.#ours.add(nc);
    void nc.close();
  }

  close(): void {
    this.cut();
  }
}

/** NATS over its WebSocket listener: a core subscription on the stream's subject (see nats-peer.ts); no resume. */
class NatsClient extends NatsBenchClient {
  async open(): Promise<boolean> {
    const nc = await this.connect();
    nc.subscribe(natsSubject(this.stream), { callback: (_err, msg) => this.received(msg.data) });
    // The subscription is registered on the server once a round trip completes.
    await nc.flush();
    return false;
  }
}

/**
 * NATS JetStream: an ordered consumer on the stream's subject of the `BENCH` stream (see
 * nats-peer.ts), new messages only at first; after a cut, a new ordered consumer from the
 * sequence after the last one seen. Synced once the messages pending at its creation arrived.
 */
class JetStreamClient extends NatsBenchClient {
  /** Stream sequence of the last message received (0: none yet). */
  #last = 0;

  async open(): Promise<boolean> {
    const nc = await this.connect();
    const resume = this.#last > 0;
    const consumer = await jetstream(nc).consumers.get('BENCH', {
      filter_subjects: natsSubject(this.stream),
      ...(resume ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.#last + 1 } : { deliver_policy: DeliverPolicy.New }),
    });
    let pending = (await consumer.info(true)).num_pending;
    await new Promise<void>((resolve) => {
      if (pending === 0) resolve();
      void (async () => {
        for await (const msg of await consumer.consume()) {
          this.#last = msg.seq;
          this.received(msg.data);
          if (pending > 0 && --pending === 0) resolve();
        }
      })().catch(() => {});
    });
    return resume;
  }
}

function makeClient(system: System, port: number, spec: ClientSpec): BenchClient {
  switch (system) {
    case 'tradesync':
      return new TradeSyncClient(port, spec.stream);
    case 'raw-ws':
      return new RawClient(port, spec.stream);
    case 'socket.io':
      return new SocketIoClient(port, spec.stream);
    case 'nats':
      return new NatsClient(port, spec.stream);
    case 'nats-jetstream':
      return new JetStreamClient(port, spec.stream);
  }
}

let clients: BenchClient[] = [];

/** Opens clients a chunk at a time, so the server's accept backlog is not the thing measured. */
async function connectAll(system: System, port: number, specs: readonly ClientSpec[]): Promise<{ count: number; failed: number }> {
  clients = specs.map((spec) => makeClient(system, port, spec));
  let failed = 0;
  const CHUNK = 100;
  for (let i = 0; i < clients.length; i += CHUNK) {
    const results = await Promise.allSettled(clients.slice(i, i + CHUNK).map((c) => c.open()));
    failed += results.filter((r) => r.status === 'rejected').length;
  }
  return { count: clients.length - failed, failed };
}

/** How long a storm may take before the clients still out are counted as failed. */
const STORM_TIMEOUT_MS = 20_000;

/** Every socket cut in the same instant, then every client reconnects and resumes at once. */
async function storm(): Promise<WorkerReply> {
  const cutAt = now();
  for (const client of clients) client.cut();
  let lastSyncedAt = cutAt;
  let recovered = 0;
  let synced = 0;
  const all = Promise.allSettled(
    clients.map(async (client) => {
      const resumed = await client.open();
      lastSyncedAt = Math.max(lastSyncedAt, now());
      synced++;
      if (resumed) recovered++;
    }),
  );
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([all, new Promise((resolve) => (timer = setTimeout(resolve, STORM_TIMEOUT_MS)))]);
  clearTimeout(timer);
  return { op: 'stormed', cutAt, lastSyncedAt, synced, recovered, failed: clients.length - synced };
}

const reply = (message: WorkerReply): void => void process.send?.(message);

process.on('message', (cmd: WorkerCommand) => {
  void (async () => {
    try {
      switch (cmd.op) {
        case 'connect':
          reply({ op: 'connected', ...(await connectAll(cmd.system, cmd.port, cmd.clients)) });
          break;
        case 'window':
          histogram = newHistogram();
          stats.received = 0;
          windowStart = cmd.start;
          windowEnd = cmd.end;
          break;
        case 'collect':
          reply({ op: 'collected', histogram: encodeHistogram(histogram), ...stats });
          break;
        case 'storm':
          reply(await storm());
          break;
        case 'close':
          for (const client of clients) client.close();
          clients = [];
          reply({ op: 'closed' });
          break;
      }
    } catch (err) {
      reply({ op: 'error', message: err instanceof Error ? err.message : String(err) });
    }
  })();
});

// The orchestrator owns this process: when it goes, so do we.
process.on('disconnect', () => process.exit(0));
