// AsyncResource#bind without Node 20's per-call deprecation wrappers. node:http2's
// client binds every request it makes (`reqAsync.bind(requestOnConnect...)`),
// and Node 20's bind() defines on each bound function a getter and a setter
// for `asyncResource` made by util.deprecate(), each a new closure whose
// prototype is then changed (DEP0172; Node 24 no longer does this). With an
// h2c backend that cost about a sixth of the CPU of each forwarded stream
// (docs/benchmarks.md, "HTTP/2 to the backend (h2c)"). This bind does what
// Node's does, running `fn` in the resource's async scope with the caller's
// `this` unless `thisArg` is given, with `length` and a plain `asyncResource`
// property: only the deprecation warning (which nothing here reads) is gone.
import { AsyncResource } from 'node:async_hooks';

let installed = false;

/** Replaces AsyncResource.prototype.bind once per process (an h2c backend asks for it). */
export function installFastAsyncBind(): void {
  if (installed) return;
  installed = true;
  AsyncResource.prototype.bind = fastBind as unknown as typeof AsyncResource.prototype.bind;
}

type Bindable = (this: unknown, ...args: unknown[]) => unknown;

function fastBind(
  this: AsyncResource,
  fn: Bindable,
  thisArg?: unknown,
): Bindable & { asyncResource: AsyncResource } {
  if (typeof fn !== 'function') {
    throw Object.assign(new TypeError(`The "fn" argument must be of type function. Received ${typeof fn}`), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
  }
  const resource = this;
  const bound: Bindable =
    thisArg === undefined
      ? function (this: unknown, ...args: unknown[]) {
          return resource.runInAsyncScope(fn, this, ...args);
        }
      : resource.runInAsyncScope.bind(resource, fn, thisArg);
  Object.defineProperty(bound, 'length', {
    configurable: true,
    enumerable: false,
    value: fn.length,
    writable: false,
  });
  return Object.assign(bound, { asyncResource: resource });
}
