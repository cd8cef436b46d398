/** The client workers: forked processes driven over IPC (see worker.ts). */
import { fork, type ChildProcess } from 'node:child_process';
import type { WorkerCommand, WorkerReply } from './common.js';
import { track } from './servers.js';

const WORKER = new URL('./worker.ts', import.meta.url).pathname;

export class Worker {
  readonly #child: ChildProcess;

  constructor() {
    this.#child = track(fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }

  send(cmd: WorkerCommand): void {
    this.#child.send(cmd);
  }

  /** Sends a command and waits for the reply of the given kind. */
  ask<K extends WorkerReply['op']>(cmd: WorkerCommand, op: K, timeoutMs = 120_000): Promise<Extract<WorkerReply, { op: K }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`worker: no '${op}' within ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (msg: WorkerReply): void => {
        if (msg.op === op) done(undefined, msg as Extract<WorkerReply, { op: K }>);
        else if (msg.op === 'error') done(new Error(`worker: ${msg.message}`));
      };
      const onExit = (code: number | null): void => done(new Error(`worker exited (${code})`));
      const done = (err?: Error, value?: Extract<WorkerReply, { op: K }>): void => {
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
