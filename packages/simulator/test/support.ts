import { EventRecorder, SimClock, Simulator, type SimulatorOptions } from '../src/index.js';

export const START = Date.UTC(2025, 0, 1);

/** A replayable simulator over an in-memory recorder (the gateway's validation and reducer). */
export function recordedSimulator(options: Partial<SimulatorOptions> = {}): { sim: Simulator; recorder: EventRecorder } {
  const recorder = new EventRecorder();
  const sim = new Simulator({ sink: recorder, state: recorder, seed: 1, clock: new SimClock(START, 1000), ...options });
  return { sim, recorder };
}

export async function steps(sim: Simulator, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await sim.step();
}

/** Runs steps until the recorder holds a pending signal for the account; returns its id. */
export async function untilPendingSignal(sim: Simulator, recorder: EventRecorder, account = 'demo', max = 3000): Promise<string> {
  for (let i = 0; i < max; i++) {
    const state = recorder.stateOf(`signals:${account}`) as { signals: Record<string, { status: string }> };
    const pending = Object.entries(state.signals).find(([, s]) => s.status === 'pending');
    if (pending) return pending[0];
    await sim.step();
  }
  throw new Error('no signal within the step budget');
}
