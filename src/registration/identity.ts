// Who this app instance is and where the node reaches it, from values the
// CLI reads out of the environment (this module reads none itself).
import type { NetworkInterfaceInfo } from 'node:os';

export interface InstanceIdSources {
  /** CF_INSTANCE_GUID */
  readonly cfInstanceGuid?: string | undefined;
  /** VCAP_APPLICATION, raw JSON text (its `instance_id` is used). */
  readonly vcapApplication?: string | undefined;
  /** os.hostname() */
  readonly hostname: string;
}

/** CF_INSTANCE_GUID, else VCAP_APPLICATION's instance_id, else the hostname (issue 4). */
export function resolveInstanceId(sources: InstanceIdSources): string {
  const guid = sources.cfInstanceGuid?.trim();
  if (guid) return guid;
  if (sources.vcapApplication) {
    try {
      const app = JSON.parse(sources.vcapApplication) as { instance_id?: unknown };
      if (typeof app.instance_id === 'string' && app.instance_id.trim()) return app.instance_id.trim();
    } catch {
      // A broken VCAP_APPLICATION is the config reader's to report; fall back to the hostname.
    }
  }
  return sources.hostname;
}

/** HARBOR_INSTANCE_HOST, else the first non-internal address (IPv4 first), else 127.0.0.1. */
export function resolveInstanceHost(
  explicit: string | undefined,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>,
): string {
  if (explicit?.trim()) return explicit.trim();
  const all = Object.values(interfaces).flatMap((list) => list ?? []);
  const v4 = all.find((a) => a.family === 'IPv4' && !a.internal);
  if (v4) return v4.address;
  const v6 = all.find((a) => a.family === 'IPv6' && !a.internal && !a.address.startsWith('fe80'));
  return v6?.address ?? '127.0.0.1';
}
