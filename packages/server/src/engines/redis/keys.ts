/**
 * Where the engine keeps what, all under the prefix:
 *
 *   streams          SET    every stream that has had an event appended
 *   generation       STRING random id of this Redis dataset; gone after FLUSHALL or a
 *                           restart without persistence (the cheap "history lost" probe)
 *   m:<stream>       HASH   epoch, head (last offset), first (oldest kept), ts (last stamp)
 *   l:<stream>       STREAM entries `<offset>-0` with fields t (type), d (data JSON), ts (ms)
 *   s:<stream>       HASH   the newest snapshot: epoch, offset, v, state, at
 *   appends          pub/sub channel: one message per append call
 */
export class Keys {
  readonly streams: string;
  readonly generation: string;
  readonly channel: string;

  constructor(readonly prefix: string) {
    this.streams = `${prefix}streams`;
    this.generation = `${prefix}generation`;
    this.channel = `${prefix}appends`;
  }

  meta(stream: string): string {
    return `${this.prefix}m:${stream}`;
  }

  log(stream: string): string {
    return `${this.prefix}l:${stream}`;
  }

  snapshot(stream: string): string {
    return `${this.prefix}s:${stream}`;
  }
}
