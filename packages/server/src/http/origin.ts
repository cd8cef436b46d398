/**
 * Which web pages may talk to the gateway. A browser lets any page open a WebSocket to
 * any host and send a POST anywhere, so without this check a site the trader happens to
 * visit could read the desk and place orders through a gateway on localhost (cross-site
 * WebSocket hijacking). Browsers always send `Origin` on a WebSocket upgrade and on a
 * cross-site POST; bots and CLIs send none and are not web pages, so they pass.
 *
 * The gateway's own origins are the page it serves under every name it answers to:
 * `localhost`, `127.0.0.1` and `[::1]` for a loopback or wildcard bind, the configured
 * host, and for a wildcard bind every local interface address and the machine's name.
 * Anything else must be listed in `allowed_origins`.
 *
 * The Host check closes DNS rebinding for a loopback bind: a page on `evil.example`
 * whose name is re-pointed at 127.0.0.1 is same-origin to itself, so its GETs carry no
 * `Origin`; but they carry `Host: evil.example`, which names no host of ours.
 */
import { hostname, networkInterfaces } from 'node:os';
import { isIPv6 } from 'node:net';
import { isLoopback, normalizeOrigin } from '../config.js';

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]', '']);
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** `::1` → `[::1]`, as it appears in a URL and a Host header. */
const urlHost = (host: string): string => (isIPv6(host) ? `[${host}]` : host.toLowerCase());

export type OriginVerdict = 'none' | 'own' | 'allowed' | 'foreign';

export class OriginPolicy {
  readonly #own = new Set<string>();
  readonly #allowed: ReadonlySet<string>;
  readonly #any: boolean;
  /** Host names a request may name in `Host` (null: any; used for non-loopback binds, where auth is on). */
  readonly #hosts: Set<string> | null;

  /**
   * @param host the configured bind address
   * @param port the port actually listened on (known after `listen`)
   * @param allowedOrigins the `allowed_origins` setting (already lower-case; may hold `*`)
   */
  constructor(host: string, port: number, allowedOrigins: readonly string[]) {
    this.#any = allowedOrigins.includes('*');
    this.#allowed = new Set(allowedOrigins.filter((o) => o !== '*'));
    const names = new Set<string>();
    const wildcard = WILDCARD_HOSTS.has(host.trim());
    if (wildcard || isLoopback(host)) for (const n of LOOPBACK_NAMES) names.add(n);
    if (!wildcard) names.add(urlHost(host.replace(/^\[|\]$/g, '')));
    if (wildcard) {
      names.add(hostname().toLowerCase());
      for (const list of Object.values(networkInterfaces())) {
        for (const address of list ?? []) names.add(urlHost(address.address.split('%')[0] ?? address.address));
      }
    }
    for (const name of names) {
      for (const scheme of ['http', 'https'] as const) {
        const base = `${scheme}://${name}`;
        this.#own.add(normalizeOrigin(`${base}:${port}`) ?? `${base}:${port}`);
      }
    }
    if (isLoopback(host)) {
      this.#hosts = new Set(names);
      for (const origin of this.#allowed) this.#hosts.add(new URL(origin).hostname);
    } else {
      this.#hosts = null;
    }
  }

  /** Where a request's `Origin` header puts it. */
  judge(origin: string | undefined): OriginVerdict {
    if (origin === undefined) return 'none';
    const normalized = normalizeOrigin(origin.trim());
    // `null` (sandboxed frames, file: pages) and anything unparsable are foreign.
    if (normalized === undefined) return this.#any ? 'allowed' : 'foreign';
    if (this.#own.has(normalized)) return 'own';
    if (this.#any || this.#allowed.has(normalized)) return 'allowed';
    return 'foreign';
  }

  /** True when `Origin` is absent, ours or allowed. */
  allows(origin: string | undefined): boolean {
    return this.judge(origin) !== 'foreign';
  }

  /** False when the `Host` header names a host a loopback-bound gateway does not answer to. */
  allowsHost(hostHeader: string | undefined): boolean {
    if (this.#hosts === null) return true;
    // HTTP/1.0 clients may omit Host; a browser never does.
    if (hostHeader === undefined || hostHeader === '') return true;
    const name = hostHeader.trim().toLowerCase().replace(/:\d+$/, '');
    return this.#hosts.has(name) || isLoopback(name);
  }
}
