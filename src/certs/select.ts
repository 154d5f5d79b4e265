// Which files serve a service: the certificate folder (explicit, else
// <app root>/certs, else <app root>/cert), then S.crt + S.key, else
// harbor.crt + harbor.key, and the client CA (S.ca, else harbor.ca, or an
// explicit bundle). Pure look-ups on the file system, re-run on every reload
// so that a per-service pair appearing or disappearing changes the choice.
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HarborError, type Problem } from '../errors/index.js';
import { displayPath } from './pair.js';

export interface CertsDirOptions {
  /** --certs-dir / HARBOR_CERTS_DIR; relative paths are taken from the app root. */
  readonly certsDir?: string | undefined;
  readonly appRoot: string;
}

export type CertsDirReason = 'explicit' | 'certs folder' | 'cert folder';

export interface CertsDir {
  readonly dir: string;
  readonly reason: CertsDirReason;
  readonly exists: boolean;
  /** Every folder that could become the certificate folder (both certs/ and cert/ unless explicit). */
  readonly candidates: readonly string[];
}

export interface SelectOptions extends CertsDirOptions {
  /** The Harbor service name: its files are <service>.crt, .key and .ca. */
  readonly service: string;
  /** --client-ca / HARBOR_CLIENT_CA: a CA bundle that overrides S.ca and harbor.ca. */
  readonly clientCa?: string | undefined;
  /** File names in messages are shown relative to this folder (default: the app root). */
  readonly displayRoot?: string | undefined;
}

export type SelectionReason = 'per-service pair' | 'fallback harbor pair';
export type CaReason = 'explicit client CA' | 'per-service CA' | 'fallback harbor CA';

export interface Selection {
  readonly dir: string;
  readonly dirReason: CertsDirReason;
  readonly certFile: string;
  readonly keyFile: string;
  readonly reason: SelectionReason;
  readonly caFile?: string | undefined;
  readonly caReason?: CaReason | undefined;
  /** One file of the per-service pair without the other (then the fallback pair is used). */
  readonly halfPair?: { readonly present: string; readonly missing: string } | undefined;
  /** W_HALF_PAIR when there is a half pair. */
  readonly warnings: readonly Problem[];
}

export const FALLBACK_NAME = 'harbor';

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The certificate folder: explicit, else <appRoot>/certs if it exists, else <appRoot>/cert (the seed names both). */
export function resolveCertsDir(options: CertsDirOptions): CertsDir {
  if (options.certsDir !== undefined && options.certsDir !== '') {
    const dir = resolve(options.appRoot, options.certsDir);
    return { dir, reason: 'explicit', exists: isDir(dir), candidates: [dir] };
  }
  const certs = resolve(options.appRoot, 'certs');
  const cert = resolve(options.appRoot, 'cert');
  const candidates = [certs, cert];
  if (isDir(certs)) return { dir: certs, reason: 'certs folder', exists: true, candidates };
  return { dir: cert, reason: 'cert folder', exists: isDir(cert), candidates };
}

/** A service name usable as a file name: no path separators, not `.`/`..`. */
function usableName(service: string): boolean {
  return service !== '' && service !== '.' && service !== '..' && !/[/\\\0]/.test(service);
}

/** Every file whose appearance, disappearance or change can alter the choice or content, in every candidate folder. */
export function candidateFiles(options: SelectOptions): string[] {
  const names = usableName(options.service) ? [options.service, FALLBACK_NAME] : [FALLBACK_NAME];
  const files: string[] = [];
  for (const dir of resolveCertsDir(options).candidates) {
    for (const name of names)
      files.push(join(dir, `${name}.crt`), join(dir, `${name}.key`), join(dir, `${name}.ca`));
  }
  if (options.clientCa) files.push(resolve(options.appRoot, options.clientCa));
  return files;
}

/** Picks the pair for a service, or throws E_NO_PAIR naming what was looked for. */
export function selectPair(options: SelectOptions): Selection {
  const certsDir = resolveCertsDir(options);
  const { dir } = certsDir;
  const shown = (file: string) => displayPath(file, options.displayRoot ?? options.appRoot);
  const warnings: Problem[] = [];
  const own = usableName(options.service);
  const sCrt = join(dir, `${options.service}.crt`);
  const sKey = join(dir, `${options.service}.key`);
  const hCrt = join(dir, `${FALLBACK_NAME}.crt`);
  const hKey = join(dir, `${FALLBACK_NAME}.key`);

  let halfPair: Selection['halfPair'];
  let pick: { certFile: string; keyFile: string; reason: SelectionReason } | undefined;
  const sHasCrt = own && isFile(sCrt);
  const sHasKey = own && isFile(sKey);
  if (sHasCrt && sHasKey && options.service !== FALLBACK_NAME) {
    pick = { certFile: sCrt, keyFile: sKey, reason: 'per-service pair' };
  } else {
    if (sHasCrt !== sHasKey && options.service !== FALLBACK_NAME) {
      halfPair = sHasCrt ? { present: sCrt, missing: sKey } : { present: sKey, missing: sCrt };
      warnings.push({
        code: 'W_HALF_PAIR',
        message: `service ${options.service}: ${shown(halfPair.present)} has no ${shown(halfPair.missing)} beside it; using ${shown(hCrt)} and ${shown(hKey)}`,
      });
    }
    if (isFile(hCrt) && isFile(hKey))
      pick = { certFile: hCrt, keyFile: hKey, reason: 'fallback harbor pair' };
  }

  if (pick === undefined) {
    const [first, second] = certsDir.candidates.map(shown);
    const where = certsDir.exists
      ? ` in ${shown(dir)}`
      : second === undefined
        ? `: ${first} does not exist`
        : `: neither ${first} nor ${second} exists`;
    const looked =
      own && options.service !== FALLBACK_NAME
        ? `${options.service}.crt + ${options.service}.key, then `
        : '';
    const half = [hCrt, hKey].filter(isFile).map((f) => `${shown(f)} has no partner`);
    if (halfPair) half.unshift(`${shown(halfPair.present)} has no partner`);
    throw new HarborError(
      'E_NO_PAIR',
      `service ${options.service}: no certificate pair${where} (looked for ${looked}${FALLBACK_NAME}.crt + ${FALLBACK_NAME}.key)${half.length ? `; ${half.join('; ')}` : ''}`,
    );
  }

  let caFile: string | undefined;
  let caReason: CaReason | undefined;
  if (options.clientCa) {
    caFile = resolve(options.appRoot, options.clientCa);
    caReason = 'explicit client CA';
  } else if (own && options.service !== FALLBACK_NAME && isFile(join(dir, `${options.service}.ca`))) {
    caFile = join(dir, `${options.service}.ca`);
    caReason = 'per-service CA';
  } else if (isFile(join(dir, `${FALLBACK_NAME}.ca`))) {
    caFile = join(dir, `${FALLBACK_NAME}.ca`);
    caReason = 'fallback harbor CA';
  }
  return { dir, dirReason: certsDir.reason, ...pick, caFile, caReason, halfPair, warnings };
}
