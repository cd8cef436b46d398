import { rmSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { defineComponent, effectScope, h } from 'vue';
import { describeStatus } from '@tradesync/client';
import { startGateway } from '@tradesync/testing';
import { createTradeSync, useConnectionStatus } from '../src/index.js';
import { mount } from './support/renderer.js';
import { nodeClient } from './support/client.js';

describe('useConnectionStatus', () => {
  it('follows the client through a gateway restart (Live, Reconnecting, Live) and stops with its scope', async () => {
    const first = await startGateway({}, { keepData: true });
    const port = first.gateway.port;
    try {
      const client = nodeClient(first.wsUrl);
      const Status = defineComponent(() => {
        const status = useConnectionStatus();
        return () => h('p', describeStatus(status.value));
      });
      const { text } = mount(Status, createTradeSync(client));
      await vi.waitFor(() => expect(text()).toBe('Live'));

      // A second ref, in a scope that ends while the client is still connected.
      const scope = effectScope();
      const stopped = scope.run(() => useConnectionStatus({ client }))!;
      expect(stopped.value.state).toBe('connected');
      scope.stop();

      await first.stop();
      await vi.waitFor(() => expect(text()).toMatch(/^Reconnecting \(attempt \d+\/10\)$/));
      expect(stopped.value.state).toBe('connected');

      await using second = await startGateway({ port }, { dataDir: first.dataDir });
      await vi.waitFor(() => expect(text()).toBe('Live'), { timeout: 10_000 });
      expect(client.status.connectionId).not.toBeNull();
      expect(second.gateway.port).toBe(port);
    } finally {
      await first.stop();
      rmSync(first.dataDir, { recursive: true, force: true });
    }
  });
});
