export const NODE_HEADER = [];
export function nodeRows() {
  return [];
}
export async function runNodeBench() {
  return { rounds: [], goals: [], notes: ['not written yet'] };
}
