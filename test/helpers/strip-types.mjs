// The suite's TypeScript as JavaScript: each src/ and test/ .ts file with its
// types blanked out by ts-blank-space (every other character stays where it
// was, so line and column numbers in stack traces are the .ts file's own, with
// no source map to read), written to .test-js/. `node test/helpers/strip-types.mjs`
// writes them all (the pretest step); the test processes' module hooks
// (load-ts-hooks.mjs) read them, and strip a file changed since on the spot.
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OUT = join(ROOT, '.test-js');

/** Where the JavaScript of the .ts file at `path` (absolute, under ROOT) is kept. */
export function strippedPath(path) {
  return join(OUT, `${path.slice(ROOT.length, -3)}.js`);
}

let blank;

/** Writes the JavaScript of the .ts file at `path` and returns it. */
export async function strip(path) {
  blank ??= (await import('ts-blank-space')).default;
  const problems = [];
  const source = readFileSync(path, 'utf8');
  // The node has no source file to ask for its text: its span in the source, then.
  const js = blank(source, (node) => problems.push(source.slice(node.pos, node.end).trim()));
  if (problems.length > 0) {
    // enum, namespace, parameter properties: syntax that is more than types (tsconfig's erasable-only rule).
    throw new Error(`${path}: syntax ts-blank-space cannot erase: ${problems[0].slice(0, 80)}`);
  }
  const out = strippedPath(path);
  mkdirSync(dirname(out), { recursive: true });
  // Whole or not at all: two test processes may strip the same changed file at once.
  const part = `${out}.${process.pid}.part`;
  writeFileSync(part, js);
  renameSync(part, out);
  return js;
}

function* tsFiles(folder) {
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* tsFiles(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let files = 0;
  for (const folder of ['src', 'test']) {
    for (const path of tsFiles(join(ROOT, folder))) {
      await strip(path);
      files++;
    }
  }
  process.stdout.write(`stripped the types of ${files} files into .test-js/\n`);
}
