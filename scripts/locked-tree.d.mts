// Types for scripts/locked-tree.mjs (plain JavaScript: it runs at pack time, before any build).
export function installedPackagePaths(root: string, under?: string): string[];
export function lockedTreeDifferences(
  lockPath: string,
  root: string,
  options?: { readonly production?: boolean },
): string[];
