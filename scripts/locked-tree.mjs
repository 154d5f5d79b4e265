#!/usr/bin/env node
// The package bundles its production dependencies (package.json
// "bundleDependencies"), so `npm pack` copies them from node_modules as they
// are. This check runs before every pack (the "prepack" script): it refuses a
// node_modules whose production packages are not exactly what
// package-lock.json locks (after an `npm install` that moved a version, say),
// so a tarball can only carry the tree that was tested. `npm ci` makes the
// right tree. test/e2e/pack-install.test.ts runs the same comparison on the
// installed tarball. Why bundling: docs/operations.md.
//
// Usage: node scripts/locked-tree.mjs [PROJECT_DIR]   (exit 1, one line per difference)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Every package folder under `root` as lockfile paths: node_modules/a, node_modules/a/node_modules/@s/b. */
export function installedPackagePaths(root, under = 'node_modules') {
  const folder = join(root, under);
  if (!existsSync(folder)) return [];
  const paths = [];
  for (const entry of readdirSync(folder)) {
    if (entry.startsWith('.')) continue;
    const names = entry.startsWith('@')
      ? readdirSync(join(folder, entry)).map((s) => `${entry}/${s}`)
      : [entry];
    for (const name of names) {
      const path = `${under}/${name}`;
      if (!existsSync(join(root, path, 'package.json'))) continue;
      paths.push(path, ...installedPackagePaths(root, `${path}/node_modules`));
    }
  }
  return paths;
}

/**
 * Every difference between the production packages package-lock.json locks and
 * the packages installed under `root` (where the lock's `node_modules/...` paths
 * start), one line each; empty when they agree. With `production`, a locked
 * development package that is installed counts as a difference too.
 */
export function lockedTreeDifferences(lockPath, root, { production = false } = {}) {
  const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
  const locked = new Map(Object.entries(lock.packages ?? {}).filter(([path]) => path !== ''));
  const problems = [];
  for (const [path, entry] of locked) {
    if (entry.dev === true || entry.link === true) continue;
    const manifest = join(root, path, 'package.json');
    if (!existsSync(manifest)) {
      if (entry.optional !== true) problems.push(`${path}: locked at ${entry.version}, not installed`);
      continue;
    }
    const { version } = JSON.parse(readFileSync(manifest, 'utf8'));
    if (version !== entry.version) problems.push(`${path}: locked at ${entry.version}, installed ${version}`);
  }
  for (const path of installedPackagePaths(root)) {
    const entry = locked.get(path);
    if (entry === undefined) problems.push(`${path}: installed, not in package-lock.json`);
    else if (production && entry.dev === true) problems.push(`${path}: a development dependency, installed`);
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const project = resolve(process.argv[2] ?? '.');
  const problems = lockedTreeDifferences(join(project, 'package-lock.json'), project);
  // `npm install <package>` rewrites `true` into a list of the dependencies it knew then, so
  // the next dependency added would silently be left out of the tarball.
  const manifest = join(project, 'package.json');
  const { bundleDependencies } = existsSync(manifest) ? JSON.parse(readFileSync(manifest, 'utf8')) : {};
  if (existsSync(manifest) && bundleDependencies !== true) {
    console.error(
      'package.json: "bundleDependencies" must be true (npm install rewrote it into a list); set it back to true, then pack again',
    );
    process.exit(1);
  }
  if (problems.length > 0) {
    for (const problem of problems) console.error(`node_modules differs from package-lock.json: ${problem}`);
    console.error('run `npm ci` to install the locked tree, then pack again');
    process.exit(1);
  }
}
