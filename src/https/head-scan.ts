// The WebAssembly byte scan of HTTP/1.x heads (wasm/head-scan.ts), loaded once
// per process: head-parser.ts writes a head's text into its memory, scans it,
// and reads the positions back. Nothing here decides what a header means.
import type { HeadError } from './head.js';
import { HEAD_SCAN_WASM } from './head-scan-wasm.js';
import { K_UNDERSCORE, KNOWN_NAMES } from './header-kinds.js';

/** What this module uses of the WebAssembly API (not in the ES2023 lib that tsconfig.json names). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
};

interface ScanExports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  init(underscoreKind: number): void;
  addName(length: number, kind: number): number;
  results(): number;
  text(): number;
  scanRequest(length: number): number;
  scanResponse(length: number): number;
}

const instance = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(HEAD_SCAN_WASM, 'base64')), {
  env: {
    abort(): void {
      throw new Error('head scan: WebAssembly abort');
    },
  },
});
const scan = instance.exports as unknown as ScanExports;
scan.init(K_UNDERSCORE);

/** Where the text goes in the scanner's memory, and where the results are (in i32s). */
const TEXT_AT = scan.text();
const RESULTS_AT = scan.results() / 4;
/** Results: the start line's end; the request's first space or the response's status; the second space; the minor version; the lines read. */
export const R_START_LINE_END = RESULTS_AT;
export const R_FIRST = RESULTS_AT + 1;
export const R_SECOND = RESULTS_AT + 2;
export const R_MINOR = RESULTS_AT + 3;
export const R_LINES = RESULTS_AT + 4;
/** Header line i's results begin at R_LINE + 6 * i: start, colon, value start, value end, end, kind (header-kinds.ts). */
export const R_LINE = RESULTS_AT + 8;

/** The scan's errors, by the negative number it returns. */
const ERRORS: (HeadError | null)[] = [
  null,
  'too-many-headers',
  'obs-fold',
  'bad-header-name',
  'bad-header-value',
  'bad-request-line',
  'bad-method',
  'bad-target',
  'bad-version',
  'bad-status-line',
];

/** The scanner's memory: the head's bytes from `TEXT_AT` (`bytes`), its results as i32s (`results`). */
export let bytes: Buffer = Buffer.from(scan.memory.buffer);
export let results: Int32Array = new Int32Array(scan.memory.buffer);
/** Where a head's text begins in `bytes`. */
export { TEXT_AT };

for (const [name, kind] of KNOWN_NAMES) {
  place(name);
  if (scan.addName(name.length, kind) !== 0)
    throw new Error(`head scan: no room for the header name ${name}`);
}

/** Writes `text` (latin1) into the scanner's memory, growing it when the text does not fit. */
function place(text: string): void {
  const need = TEXT_AT + text.length;
  if (need > bytes.length) {
    scan.memory.grow(Math.ceil((need - bytes.length) / 65536));
    bytes = Buffer.from(scan.memory.buffer);
    results = new Int32Array(scan.memory.buffer);
  }
  bytes.write(text, TEXT_AT, 'latin1');
}

/** Scans a request head's text: the count of header lines, or a negative error (scanError names it). */
export function scanRequest(text: string): number {
  place(text);
  return scan.scanRequest(text.length);
}

/** Scans a response head's text, as scanRequest. */
export function scanResponse(text: string): number {
  place(text);
  return scan.scanResponse(text.length);
}

/** The error a scan's negative result stands for. */
export function scanError(result: number): HeadError {
  return ERRORS[-result] ?? 'bad-header-value';
}
