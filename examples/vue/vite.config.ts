import { defaultClientConditions, defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';

/**
 * Builds the page into `dist/`; any gateway serves it with `dashboard_dir` pointing
 * there. In `npm run dev` the socket goes to a gateway on :8000 (`tradesync serve`).
 */
export default defineConfig({
  plugins: [vue()],
  // The workspace's packages from their TypeScript sources (their `@tradesync/source`
  // export condition), as the dashboard does: no build of them needed first.
  resolve: { conditions: ['@tradesync/source', ...defaultClientConditions] },
  // Relative asset URLs: the page works wherever it is served from.
  base: './',
  build: { outDir: 'dist', emptyOutDir: true },
  server: {
    // The gateway accepts only its own pages (and listed `allowed_origins`): the dev
    // server's proxy speaks for this page as the gateway's own origin.
    proxy: { '/ws': { target: 'ws://127.0.0.1:8000', ws: true, headers: { origin: 'http://127.0.0.1:8000' } } },
  },
});
