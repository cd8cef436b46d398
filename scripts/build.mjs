#!/usr/bin/env node
// Builds every workspace package that has a `build` script, each after the workspace
// packages it depends on (read from the manifests, so a new package needs no entry here):
// a package's compiler resolves its @tradesync dependencies to their built dist. Only a
// dependency that has a build counts, so the test-support package (source only, and a
// devDependency of the packages it tests) makes no cycle.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = JSON.parse(readFileSync('package.json', 'utf8'));
const packages = new Map();
for (const dir of root.workspaces) {
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  packages.set(manifest.name, { dir, manifest });
}

const order = [];
const state = new Map();
function visit(name, path) {
  if (state.get(name) === 'done') return;
  if (state.get(name) === 'visiting') throw new Error(`workspace dependency cycle: ${[...path, name].join(' -> ')}`);
  state.set(name, 'visiting');
  const { manifest } = packages.get(name);
  const deps = { ...manifest.dependencies, ...manifest.devDependencies, ...manifest.peerDependencies };
  for (const dep of Object.keys(deps)) if (packages.get(dep)?.manifest.scripts?.build) visit(dep, [...path, name]);
  state.set(name, 'done');
  order.push(name);
}
for (const name of packages.keys()) visit(name, []);

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
for (const name of order) {
  const { dir, manifest } = packages.get(name);
  if (!manifest.scripts?.build) continue;
  console.log(`build ${name} (${dir})`);
  execFileSync(npm, ['run', 'build', '--silent', '-w', name], { stdio: 'inherit' });
}
