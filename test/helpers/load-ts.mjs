// Loaded into every test process (package.json "tap" "node-arg") in place of a
// TypeScript loader such as tsx: its module hooks load each .ts module as the
// JavaScript that strip-types.mjs wrote before the tests, under the module's own
// .ts URL (import.meta.url and the paths built from it stay the same). tsx
// started an esbuild process and compiled again in each test process.
import { register } from 'node:module';

register('./load-ts-hooks.mjs', import.meta.url);
