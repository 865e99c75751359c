import type { InteractionResults } from 'oidc-provider';

/**
 * What the user chose for a standalone launch, kept in the interaction result under one custom
 * key. oidc-provider merges results shallowly (`{ ...lastSubmission, ...result }`), so every step
 * writes the whole key, carrying earlier picks forward; the consent step reads them from there.
 */
export const PICKS_KEY = 'smart_launch';

export interface LaunchPicks {
  /** Patient logical id. */
  patient?: string;
  /** How the patient was shown to the user (their name), for the consent page. */
  patientDisplay?: string;
  /** Encounter logical id. */
  encounter?: string;
  /** True once the encounter step is over, also when the user went on without one. */
  encounterDecided?: boolean;
}

export function picksOf(result: InteractionResults | undefined): LaunchPicks {
  const raw = result?.[PICKS_KEY];
  if (!raw || typeof raw !== 'object') return {};
  const r = raw as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  const picks: LaunchPicks = {};
  const patient = text(r.patient);
  const patientDisplay = text(r.patientDisplay);
  const encounter = text(r.encounter);
  if (patient) picks.patient = patient;
  if (patientDisplay) picks.patientDisplay = patientDisplay;
  if (encounter) picks.encounter = encounter;
  if (r.encounterDecided === true) picks.encounterDecided = true;
  return picks;
}

/** The interaction result that records `update` on top of the picks made so far. */
export function withPicks(lastSubmission: InteractionResults | undefined, update: LaunchPicks): InteractionResults {
  return { [PICKS_KEY]: { ...picksOf(lastSubmission), ...update } };
}
