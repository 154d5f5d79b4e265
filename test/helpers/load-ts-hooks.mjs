// Module hooks (see load-ts.mjs): an import of `./x.js` from a .ts module
// resolves to `./x.ts` when there is such a file, and a .ts module's source is
// its JavaScript in .test-js/ (strip-types.mjs), stripped again here when the
// .ts file changed since (a test edited and run alone).
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ROOT, strip, strippedPath } from './strip-types.mjs';

const ROOT_URL = pathToFileURL(ROOT).href;

/** Modification time of a file, or -1 when there is none. */
function modified(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

export async function resolve(specifier, context, next) {
  const parent = context.parentURL;
  if (
    parent?.endsWith('.ts') &&
    specifier.endsWith('.js') &&
    (specifier.startsWith('./') || specifier.startsWith('../'))
  ) {
    const url = new URL(`${specifier.slice(0, -3)}.ts`, parent);
    if (modified(fileURLToPath(url)) !== -1) return { url: url.href, format: 'module', shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts') || !url.startsWith(ROOT_URL)) return next(url, context);
  const path = fileURLToPath(url);
  const stripped = strippedPath(path);
  const source = modified(stripped) >= modified(path) ? readFileSync(stripped, 'utf8') : await strip(path);
  return { format: 'module', source, shortCircuit: true };
}
