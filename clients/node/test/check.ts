import type { Decision } from "../src/index";

/** What is wrong with `d` as a decision over `offered`, or null when it is valid. */
export function invalidDecision(d: Decision, offered: string[]): string | null {
  if (!d.eventId) return "empty eventId";
  if (!offered.includes(d.actionId)) return `actionId ${JSON.stringify(d.actionId)} is not one of ${offered}`;
  if (!(d.probability > 0 && d.probability <= 1)) return `probability ${d.probability} is not in (0, 1]`;
  if (d.ranking.length !== offered.length) {
    return `ranking has ${d.ranking.length} actions, ${offered.length} were offered`;
  }
  const seen = new Set<string>();
  let sum = 0;
  for (const r of d.ranking) {
    if (!offered.includes(r.actionId) || seen.has(r.actionId)) {
      return `ranking action ${JSON.stringify(r.actionId)} is not offered or is repeated`;
    }
    if (r.probability < 0 || r.probability > 1) return `ranking probability ${r.probability} is not in [0, 1]`;
    seen.add(r.actionId);
    sum += r.probability;
  }
  if (Math.abs(sum - 1) > 1e-6) return `ranking probabilities sum to ${sum}, not 1`;
  if (d.ranking[0].actionId !== d.actionId || Math.abs(d.ranking[0].probability - d.probability) > 1e-9) {
    return `ranking starts with ${JSON.stringify(d.ranking[0])}, not the chosen action with its probability`;
  }
  return null;
}
