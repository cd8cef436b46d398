import { defaultClientConditions, defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

/**
 * Builds the dashboard into `dist/`, which the gateway serves at `/`. In `npm run dev`
 * the socket and REST calls go to a gateway on :8000 (`tradesync serve`).
 */
export default defineConfig({
  plugins: [react()],
  // The workspace's packages from their TypeScript sources (their `@tradesync/source`
  // export condition), so the dev server and the build never need them built first.
  resolve: { conditions: ['@tradesync/source', ...defaultClientConditions] },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 1200 },
  server: {
    // The gateway accepts only its own pages (and listed `allowed_origins`): the dev
    // server's proxy speaks for this page as the gateway's own origin.
    proxy: {
      '/ws': { target: 'ws://127.0.0.1:8000', ws: true, headers: { origin: 'http://127.0.0.1:8000' } },
      '/api': { target: 'http://127.0.0.1:8000', headers: { origin: 'http://127.0.0.1:8000' } },
    },
  },
});
