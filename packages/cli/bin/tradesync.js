#!/usr/bin/env node
// The CLI is TypeScript; tsx compiles it on load so `npx tradesync` works straight after `npm install`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
process.exitCode = await main(process.argv.slice(2));
