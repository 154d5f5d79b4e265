// `--store` / HARBOR_NODE_STORE: file:PATH, memory, redis://, rediss://,
// redis-sentinel://host:port[,host:port...]/MASTER. Parsed once into a
// StoreLocation; its `description` is what logs, errors and /status show:
// never the password (HARBOR_NODE_STORE_PASSWORD or the URL's).
export type StoreLocation =
  | { readonly kind: 'memory'; readonly description: string }
  | { readonly kind: 'file'; readonly path: string; readonly description: string }
  | {
      readonly kind: 'redis';
      readonly description: string;
      /** One server, or the sentinels that name the master. */
      readonly endpoints: readonly { readonly host: string; readonly port: number }[];
      readonly sentinelMaster: string | undefined;
      readonly tls: boolean;
      readonly db: number;
      readonly username: string | undefined;
      readonly password: string | undefined;
    };

const ENDPOINT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/;

function endpoint(text: string, defaultPort: number): { host: string; port: number } | string {
  const match = ENDPOINT.exec(text);
  if (!match) return `"${text}" is not a host or host:port`;
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (port < 1 || port > 65535) return `port ${match[2]} is not 1-65535`;
  return { host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

/** The store a value names, or the reason it names none. `password`: HARBOR_NODE_STORE_PASSWORD, which wins over the URL's. */
export function parseStoreLocation(text: string, password: string | undefined): StoreLocation | string {
  const value = text.trim();
  if (value === 'memory') return { kind: 'memory', description: 'memory' };
  if (value.startsWith('file:')) {
    const path = value.slice('file:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') return 'file: needs a path, as in file:/var/lib/harbor/state.json';
    return { kind: 'file', path, description: `file:${path}` };
  }
  const scheme = /^(redis|rediss|redis-sentinel):\/\/(.*)$/.exec(value);
  if (!scheme) {
    return 'must be file:PATH, memory, redis://host:port[/db], rediss://host:port[/db] or redis-sentinel://host:port[,host:port...]/MASTER';
  }
  const [, kind, rest = ''] = scheme;
  const at = rest.lastIndexOf('@');
  const userinfo = at >= 0 ? rest.slice(0, at) : '';
  const hostAndPath = at >= 0 ? rest.slice(at + 1) : rest;
  const slash = hostAndPath.indexOf('/');
  const hosts = slash >= 0 ? hostAndPath.slice(0, slash) : hostAndPath;
  const path = slash >= 0 ? hostAndPath.slice(slash + 1) : '';
  let username: string | undefined;
  let urlPassword: string | undefined;
  if (userinfo !== '') {
    const colon = userinfo.indexOf(':');
    try {
      username = decodeURIComponent(colon >= 0 ? userinfo.slice(0, colon) : userinfo) || undefined;
      urlPassword = colon >= 0 ? decodeURIComponent(userinfo.slice(colon + 1)) : undefined;
    } catch {
      return 'has user information that is not valid percent-encoding';
    }
  }
  const sentinel = kind === 'redis-sentinel';
  const list = hosts.split(',').filter((h) => h !== '');
  if (list.length === 0) return `${kind}:// needs a host`;
  if (!sentinel && list.length > 1) return `${kind}:// takes one host; several are for redis-sentinel://`;
  const endpoints: { host: string; port: number }[] = [];
  for (const h of list) {
    const e = endpoint(h, sentinel ? 26379 : 6379);
    if (typeof e === 'string') return e;
    endpoints.push(e);
  }
  let db = 0;
  let master: string | undefined;
  if (sentinel) {
    const [name, dbText] = path.split('/');
    if (!name || !/^[A-Za-z0-9._-]+$/.test(name)) {
      return 'redis-sentinel:// needs the master name after the hosts, as in redis-sentinel://127.0.0.1:26379/harbor';
    }
    master = name;
    if (dbText !== undefined && dbText !== '') db = Number(dbText);
  } else if (path !== '') {
    db = Number(path);
  }
  if (!Number.isInteger(db) || db < 0 || db > 15) return `database must be a number 0-15, not "${path}"`;
  const shown = `${kind}://${username ? `${username}@` : ''}${list.join(',')}${master ? `/${master}` : ''}${db ? `/${db}` : ''}`;
  return {
    kind: 'redis',
    description: shown,
    endpoints,
    sentinelMaster: master,
    tls: kind === 'rediss',
    db,
    username,
    password: password || urlPassword || undefined,
  };
}
