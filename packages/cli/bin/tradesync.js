#!/usr/bin/env node
// Runs the compiled CLI (dist/, made by `npm run build`): plain Node, no TypeScript loader.
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(built)) {
  console.error('tradesync: the CLI is not built (no dist/cli.js). In the repository, run `npm run build` first.');
  process.exit(1);
}
await import(built.href);
