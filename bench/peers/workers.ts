/** The client workers: forked processes driven over IPC (see worker.ts, freshness-worker.ts). */
import { fork, type ChildProcess } from 'node:child_process';
import type { WorkerCommand, WorkerReply } from './common.js';
import { track } from './servers.js';

const WORKER = new URL('./worker.ts', import.meta.url).pathname;

/** An IPC message: its `op` tells its kind. */
interface Message {
  readonly op: string;
}

/** What every worker answers when a command failed. */
interface ErrorReply {
  readonly op: 'error';
  readonly message: string;
}

/** A worker process running `script` (worker.ts unless told), speaking commands `C` and replies `R`. */
export class Worker<C extends Message = WorkerCommand, R extends Message = WorkerReply> {
  readonly #child: ChildProcess;

  constructor(script: string = WORKER) {
    this.#child = track(fork(script, [], { execArgv: ['--conditions=@tradesync/source', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }

  /** The process id, for its CPU time (see cpuMs). */
  get pid(): number {
    return this.#child.pid!;
  }

  send(cmd: C): void {
    this.#child.send(cmd);
  }

  /** Sends a command and waits for the reply of the given kind. */
  ask<K extends R['op']>(cmd: C, op: K, timeoutMs = 120_000): Promise<Extract<R, { op: K }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`worker: no '${op}' within ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (msg: R | ErrorReply): void => {
        if (msg.op === op) done(undefined, msg as Extract<R, { op: K }>);
        else if (msg.op === 'error') done(new Error(`worker: ${(msg as ErrorReply).message}`));
      };
      const onExit = (code: number | null): void => done(new Error(`worker exited (${code})`));
      const done = (err?: Error, value?: Extract<R, { op: K }>): void => {
        clearTimeout(timer);
        this.#child.off('message', onMessage);
        this.#child.off('exit', onExit);
        if (err) reject(err);
        else resolve(value!);
      };
      this.#child.on('message', onMessage);
      this.#child.once('exit', onExit);
      this.#child.send(cmd);
    });
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.kill('SIGTERM');
    await exited;
  }
}
