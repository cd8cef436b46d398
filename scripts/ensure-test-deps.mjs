#!/usr/bin/env node
// Installs what the tests need that is not an npm package: Chromium for the browser
// tests, redis-server for the cluster tests, and Python 3 with websockets and pytest for
// the Python SDK's tests. Uses Debian's packages (as root);
// never downloads a browser of its own. Exits non-zero when something is missing
// and cannot be installed, so a test run never silently skips those suites.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** True when Debian's Python (the one its python3-* packages install into) imports `module`. */
const pythonHas = (module) => spawnSync('/usr/bin/python3', ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;

// The browser tests launch exactly /usr/bin/chromium, so a chromium elsewhere on PATH does not count.
const needs = [
  { paths: ['/usr/bin/chromium'], pkg: 'chromium' },
  { binary: 'redis-server', paths: ['/usr/bin/redis-server', '/usr/local/bin/redis-server'], pkg: 'redis-server' },
  { check: () => pythonHas('websockets'), pkg: 'python3-websockets' },
  { check: () => pythonHas('pytest'), pkg: 'python3-pytest' },
];

const found = (need) =>
  need.check?.() ??
  (need.paths.some((p) => existsSync(p)) || (need.binary !== undefined && spawnSync('sh', ['-c', `command -v ${need.binary}`]).status === 0));
const missing = needs.filter((need) => !found(need));
if (missing.length === 0) process.exit(0);

const names = missing.map((m) => m.pkg);
if (process.getuid?.() !== 0) {
  console.error(`missing system packages: ${names.join(', ')}. Install them (apt-get install -y ${names.join(' ')}) and run the tests again.`);
  process.exit(1);
}
console.log(`installing system packages for the tests: ${names.join(', ')}`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...names], { stdio: 'inherit', env });
const still = missing.filter((need) => !found(need));
if (still.length > 0) {
  console.error(`still missing after install: ${still.map((m) => m.pkg).join(', ')}`);
  process.exit(1);
}
