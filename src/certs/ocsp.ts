// OCSP for stapling: the request for a certificate (RFC 6960 CertID with
// SHA-1, as responders expect), the POST to the responder its AIA names, and
// what the answer says (status, the certificate's status, until when it holds).
// The response is stapled as the responder signed it: clients verify it.
import { createHash, type X509Certificate } from 'node:crypto';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import type * as Forge from 'node-forge';

const forge = createRequire(import.meta.url)('node-forge') as typeof Forge;
const asn1 = forge.asn1;
const SHA1_OID = '1.3.14.3.2.26';
const BASIC_RESPONSE_OID = '1.3.6.1.5.5.7.48.1.1';

/** The OCSP responder URL the certificate names (its Authority Information Access), if any. */
export function ocspUrl(cert: X509Certificate): string | undefined {
  const match = /OCSP - URI:(\S+)/.exec(cert.infoAccess ?? '');
  return match?.[1];
}

/** The DER OCSPRequest for `leaf`, issued by `issuer`. */
export function ocspRequest(leaf: X509Certificate, issuer: X509Certificate): Buffer {
  // The issuer's subject Name and public key, from its DER (any key type: node-forge's own
  // certificate reader knows RSA only). The key's BIT STRING is taken as bytes: by default
  // node-forge parses a BIT STRING's content as ASN.1 whenever it can (every RSA key, and
  // one EC key in a few hundred), and the key hash was then taken over nothing.
  // (@types/node-forge knows only the older `strict` flag for fromDer's options.)
  const reader = asn1 as unknown as {
    fromDer(
      bytes: Forge.util.ByteBuffer,
      options: { strict: boolean; decodeBitStrings: boolean },
    ): Forge.asn1.Asn1;
  };
  const cert = reader.fromDer(forge.util.createBuffer(issuer.raw.toString('binary')), {
    strict: true,
    decodeBitStrings: false,
  });
  const tbs = (cert.value as Forge.asn1.Asn1[])[0]!.value as Forge.asn1.Asn1[];
  const fields = tbs[0]!.tagClass === asn1.Class.CONTEXT_SPECIFIC ? tbs.slice(1) : tbs;
  // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
  const nameDer = asn1.toDer(fields[4]!).getBytes();
  const keyBits = (fields[5]!.value as Forge.asn1.Asn1[])[1]!.value as string;
  const sha1 = (binary: string) => createHash('sha1').update(Buffer.from(binary, 'binary')).digest('binary');
  let serial = leaf.serialNumber;
  if (serial.length % 2 === 1) serial = `0${serial}`;
  if (Number.parseInt(serial.slice(0, 2), 16) >= 0x80) serial = `00${serial}`;
  const { Class, Type } = asn1;
  const certId = asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
    asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
      asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(SHA1_OID).getBytes()),
      asn1.create(Class.UNIVERSAL, Type.NULL, false, ''),
    ]),
    asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, sha1(nameDer)),
    asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, sha1(keyBits.slice(1))),
    asn1.create(Class.UNIVERSAL, Type.INTEGER, false, forge.util.hexToBytes(serial)),
  ]);
  const ocsp = asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
    asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
      asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [
        asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, [certId]),
      ]),
    ]),
  ]);
  return Buffer.from(asn1.toDer(ocsp).getBytes(), 'binary');
}

export interface OcspAnswer {
  /** `good`, `revoked` or `unknown`; undefined when the responder refused (its status is in `error`). */
  readonly certStatus: 'good' | 'revoked' | 'unknown' | undefined;
  readonly thisUpdate: Date | undefined;
  /** Until when the answer holds; undefined when the responder gives no bound. */
  readonly nextUpdate: Date | undefined;
  readonly error: string | undefined;
}

const RESPONSE_STATUS = [
  'successful',
  'malformedRequest',
  'internalError',
  'tryLater',
  '',
  'sigRequired',
  'unauthorized',
];

/** What a DER OCSPResponse says; throws on bytes that are not one. */
export function readOcspResponse(der: Buffer): OcspAnswer {
  const top = asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
  const parts = top.value as Forge.asn1.Asn1[];
  const status = (parts[0]!.value as string).charCodeAt(0);
  if (status !== 0) {
    return {
      certStatus: undefined,
      thisUpdate: undefined,
      nextUpdate: undefined,
      error: `responder answered ${RESPONSE_STATUS[status] || `status ${status}`}`,
    };
  }
  const bytes = (parts[1]!.value as Forge.asn1.Asn1[])[0]!.value as Forge.asn1.Asn1[];
  const type = asn1.derToOid(forge.util.createBuffer(bytes[0]!.value as string));
  if (type !== BASIC_RESPONSE_OID) throw new Error(`response type ${type} is not id-pkix-ocsp-basic`);
  const basic = asn1.fromDer(forge.util.createBuffer(bytes[1]!.value as string));
  const data = (basic.value as Forge.asn1.Asn1[])[0]!.value as Forge.asn1.Asn1[];
  // ResponseData: [0] version (optional), responderID, producedAt, responses, [1] extensions.
  const responses = data.find(
    (item) => item.tagClass === asn1.Class.UNIVERSAL && item.type === asn1.Type.SEQUENCE && item.constructed,
  );
  const single = (responses?.value as Forge.asn1.Asn1[] | undefined)?.[0]?.value as
    | Forge.asn1.Asn1[]
    | undefined;
  if (single === undefined) throw new Error('no single response');
  const statusTag = single[1]!.type;
  const certStatus = statusTag === 0 ? 'good' : statusTag === 1 ? 'revoked' : 'unknown';
  const time = (node: Forge.asn1.Asn1 | undefined) =>
    node === undefined ? undefined : asn1.generalizedTimeToDate(node.value as string);
  // After certID, certStatus (itself [0], [1] or [2]) and thisUpdate: [0] EXPLICIT nextUpdate.
  const next = single
    .slice(3)
    .find((item) => item.tagClass === asn1.Class.CONTEXT_SPECIFIC && item.type === 0);
  return {
    certStatus,
    thisUpdate: time(single[2]),
    nextUpdate: next ? time((next.value as Forge.asn1.Asn1[])[0]) : undefined,
    error: undefined,
  };
}

/** POSTs the request to the responder (http only, bounded in time and size); resolves the DER answer. */
export function fetchOcsp(url: string, body: Buffer, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    if (target.protocol !== 'http:') {
      reject(new Error(`OCSP responder ${url} is not http://`));
      return;
    }
    const req = request(
      target,
      {
        method: 'POST',
        headers: { 'content-type': 'application/ocsp-request', 'content-length': body.length },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 64 * 1024) req.destroy(new Error('OCSP answer larger than 64 KiB'));
          else chunks.push(c);
        });
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(Buffer.concat(chunks))
            : reject(new Error(`OCSP responder ${url} answered HTTP ${res.statusCode}`)),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`OCSP responder ${url} did not answer in ${timeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}
