// OCSP stapling for one certificate pair: when the certificate names an OCSP
// responder and its file holds the issuer after it, the answer is fetched in
// the background at load and again before it runs out, and handed to every
// handshake that asks (status_request). A handshake never waits for it; a
// responder that is down leaves the last good answer stapled while it holds.
import { X509Certificate } from 'node:crypto';
import type { Logger } from '../log/index.js';
import { fetchOcsp, ocspRequest, ocspUrl, readOcspResponse } from './ocsp.js';

export interface StaplingState {
  /** off: nothing to staple with (no responder named, no issuer in the file); else how it goes. */
  readonly state: 'off' | 'fetching' | 'stapled' | 'failing';
  readonly responder: string | null;
  readonly certStatus: string | null;
  readonly nextUpdate: string | null;
  readonly reason: string | null;
}

export interface StaplerOptions {
  readonly service: string;
  readonly logger: Logger;
  /** After a failed fetch, the next is tried this long after (then doubled, up to 16 times it). */
  readonly retryMs?: number;
  /** An answer without nextUpdate is fetched again this often. */
  readonly refreshMs?: number;
}

const DEFAULT_RETRY_MS = 30_000;
const DEFAULT_REFRESH_MS = 3_600_000;

export class OcspStapler {
  readonly #options: StaplerOptions;
  #generation = 0;
  #timer: NodeJS.Timeout | undefined;
  #response: Buffer | undefined;
  #validUntil: number | undefined;
  #state: StaplingState = { state: 'off', responder: null, certStatus: null, nextUpdate: null, reason: null };
  #failures = 0;

  constructor(options: StaplerOptions) {
    this.#options = options;
  }

  /** The pair changed (or was loaded): staple for this chain from now on. */
  update(chainPem: string | Buffer): void {
    this.#generation++;
    clearTimeout(this.#timer);
    this.#response = undefined;
    this.#validUntil = undefined;
    this.#failures = 0;
    const target = staplingTarget(chainPem);
    if (target.request === undefined) {
      this.#state = {
        state: 'off',
        responder: target.responder,
        certStatus: null,
        nextUpdate: null,
        reason: target.reason,
      };
      return;
    }
    this.#state = {
      state: 'fetching',
      responder: target.responder,
      certStatus: null,
      nextUpdate: null,
      reason: null,
    };
    void this.#fetch(this.#generation, target.responder, target.request);
  }

  /** The answer to staple now: the last good one while it holds. */
  response(): Buffer | undefined {
    if (this.#response === undefined) return undefined;
    if (this.#validUntil !== undefined && Date.now() >= this.#validUntil) return undefined;
    return this.#response;
  }

  get state(): StaplingState {
    return this.#state;
  }

  close(): void {
    this.#generation++;
    clearTimeout(this.#timer);
  }

  async #fetch(generation: number, responder: string, body: Buffer): Promise<void> {
    const { logger, service } = this.#options;
    try {
      const der = await fetchOcsp(responder, body);
      const answer = readOcspResponse(der);
      if (generation !== this.#generation) return;
      if (answer.error !== undefined) throw new Error(answer.error);
      this.#response = der;
      this.#validUntil = answer.nextUpdate?.getTime();
      this.#failures = 0;
      this.#state = {
        state: 'stapled',
        responder,
        certStatus: answer.certStatus ?? null,
        nextUpdate: answer.nextUpdate?.toISOString() ?? null,
        reason: null,
      };
      if (answer.certStatus !== 'good') {
        logger.warn(
          { service, responder, certStatus: answer.certStatus },
          `service ${service}: the OCSP responder says the certificate is ${answer.certStatus}`,
        );
      } else logger.debug({ service, responder, nextUpdate: this.#state.nextUpdate }, 'OCSP answer stapled');
      // Fetched again halfway to its end (or every refresh period without one).
      const left = answer.nextUpdate === undefined ? undefined : answer.nextUpdate.getTime() - Date.now();
      const refresh = this.#options.refreshMs ?? DEFAULT_REFRESH_MS;
      this.#schedule(
        generation,
        responder,
        body,
        left === undefined ? refresh : Math.max(1_000, Math.min(refresh, left / 2)),
      );
    } catch (error) {
      if (generation !== this.#generation) return;
      this.#failures++;
      const reason = (error as Error).message;
      const kept = this.response() !== undefined;
      this.#state = { ...this.#state, state: kept ? 'stapled' : 'failing', reason };
      if (this.#failures === 1) {
        logger.warn(
          { service, responder, reason },
          `service ${service}: OCSP answer not fetched (${reason}); ${kept ? 'the last good one stays stapled' : 'handshakes go on without one'}, retrying`,
        );
      }
      const retry = this.#options.retryMs ?? DEFAULT_RETRY_MS;
      this.#schedule(generation, responder, body, retry * 2 ** Math.min(4, this.#failures - 1));
    }
  }

  #schedule(generation: number, responder: string, body: Buffer, ms: number): void {
    this.#timer = setTimeout(() => void this.#fetch(generation, responder, body), ms);
    this.#timer.unref();
  }
}

export type StaplingTarget =
  | { readonly responder: string; readonly request: Buffer; readonly reason: null }
  | { readonly responder: string | null; readonly request: undefined; readonly reason: string };

/** Whom to ask and what, for a certificate file (the leaf, then its issuer); or why stapling is off. */
export function staplingTarget(chainPem: string | Buffer): StaplingTarget {
  const certs = splitPem(String(chainPem));
  let leaf: X509Certificate | undefined;
  let issuer: X509Certificate | undefined;
  try {
    leaf = certs[0] === undefined ? undefined : new X509Certificate(certs[0]);
    issuer = certs[1] === undefined ? undefined : new X509Certificate(certs[1]);
  } catch {
    leaf = undefined;
  }
  const responder = leaf === undefined ? undefined : ocspUrl(leaf);
  if (leaf === undefined || responder === undefined) {
    return { responder: null, request: undefined, reason: 'the certificate names no OCSP responder' };
  }
  if (issuer === undefined || !leaf.checkIssued(issuer)) {
    return {
      responder,
      request: undefined,
      reason: 'the certificate file does not hold its issuer after it (needed to ask the responder)',
    };
  }
  return { responder, request: ocspRequest(leaf, issuer), reason: null };
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}
