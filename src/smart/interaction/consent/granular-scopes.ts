import { parseScope, permissionString } from '../../../domain/scopes/scope-syntax.js';

/**
 * Granular scope selection ((g)(10), US Core 6/7 "granular scopes"): when an app asks for a whole
 * Condition or Observation scope, the person deciding may narrow it to some categories instead.
 * The Certification Companion Guide names the categories; the scope strings are the ones US Core
 * and Inferno use (`patient/Observation.rs?category=<system>|<code>`).
 *
 * Only these narrowings are ever accepted from the consent form: a ticked value is granted when it
 * is a choice itself or one of the narrowings offered for a choice, so nothing the page did not
 * offer, and nothing wider than what may be granted, can come back.
 */

const CONDITION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/condition-category';
const US_CORE_CONDITION_CATEGORY = 'http://hl7.org/fhir/us/core/CodeSystem/condition-category';
const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const US_CORE_CATEGORY = 'http://hl7.org/fhir/us/core/CodeSystem/us-core-category';

/** The sub-resource categories the (g)(10) guide requires, per resource type, in page order. */
export const GRANULAR_CATEGORIES: Readonly<Record<string, readonly string[]>> = {
  Condition: [
    `${CONDITION_CATEGORY}|encounter-diagnosis`,
    `${CONDITION_CATEGORY}|problem-list-item`,
    `${US_CORE_CONDITION_CATEGORY}|health-concern`,
  ],
  Observation: [
    `${US_CORE_CATEGORY}|clinical-test`,
    `${OBSERVATION_CATEGORY}|laboratory`,
    `${OBSERVATION_CATEGORY}|social-history`,
    `${US_CORE_CATEGORY}|sdoh`,
    `${OBSERVATION_CATEGORY}|survey`,
    `${OBSERVATION_CATEGORY}|vital-signs`,
  ],
};

/**
 * The narrowings offered for one grantable scope: a Condition or Observation scope without a
 * query constraint, split by category with the same context and permissions. Granular scopes are
 * SMART v2 syntax only, so a v1 `patient/Observation.read` narrows to `patient/Observation.rs?…`.
 */
export function granularOptions(scope: string): string[] {
  const parsed = parseScope(scope);
  if (parsed.kind !== 'resource' || parsed.query) return [];
  const categories = GRANULAR_CATEGORIES[parsed.resourceType];
  if (!categories) return [];
  return categories.map((value) => `${parsed.context}/${parsed.resourceType}.${permissionString(parsed.permissions)}?category=${value}`);
}

/**
 * What the person chose among `offered` choices, given the ticked form values: a ticked choice as
 * it is (the whole scope wins over any of its categories), otherwise the ticked narrowings of it.
 * Anything else that was posted is ignored.
 */
export function chosenScopes(offered: readonly string[], ticked: ReadonlySet<string>): string[] {
  const chosen: string[] = [];
  for (const choice of offered) {
    if (ticked.has(choice)) chosen.push(choice);
    else chosen.push(...granularOptions(choice).filter((s) => ticked.has(s)));
  }
  return chosen;
}

/**
 * The scopes of `wanted` that may be granted: those in `grantable`, and the offered narrowings of
 * a grantable scope that is not itself wanted (a whole scope already grants its categories).
 */
export function withinGrantable(grantable: readonly string[], wanted: readonly string[]): string[] {
  const want = new Set(wanted);
  const out: string[] = [];
  for (const scope of grantable) {
    if (want.has(scope)) out.push(scope);
    else out.push(...granularOptions(scope).filter((s) => want.has(s)));
  }
  return [...new Set(out)];
}
