import type { HcsGrant } from './decision.js';
import { confidentialityCoding, handlingCoding, purposeCoding, roleCoding } from './vocabulary.js';
import { type Coding } from '../fhir/types.js';

/**
 * How tokens and introspection answers carry the HCS decision, under the IHE IUA `extensions` claim:
 *
 * - `extensions.ihe_iua`: IHE IUA (ITI-71 JWT option) subject claims — `subject_name`,
 *   `subject_organization`, `subject_organization_id`, `subject_role[]` and `purpose_of_use[]` as
 *   FHIR Codings, `national_provider_identifier`.
 * - `extensions.smart_authz_hcs`: this server's claim for what the resource server must enforce,
 *   which IUA has no member for — `confidentiality` (the ceiling, a v3-Confidentiality Coding:
 *   serve nothing labelled above it), `obligations[]` (v3-ActCode ObligationPolicy/RefrainPolicy
 *   Codings the recipient must honour), `break_the_glass: true` for emergency access, and
 *   `test_data: true` for test accounts (serve test data only).
 */

const HCS_CLAIM = 'smart_authz_hcs';

export interface IuaClaims {
  subject_name?: string;
  subject_organization?: string;
  subject_organization_id?: string;
  subject_role?: Coding[];
  purpose_of_use?: Coding[];
  national_provider_identifier?: string;
}

export interface HcsClaims {
  confidentiality: Coding;
  obligations: Coding[];
  break_the_glass?: true;
  test_data?: true;
}

/** `ihe_iua` only when there is something to say (a backend with no subject and no purpose has nothing). */
export function tokenExtensions(grant: HcsGrant): { ihe_iua?: IuaClaims; [HCS_CLAIM]: HcsClaims } {
  const s = grant.subject;
  const iua: IuaClaims = {};
  if (s?.name) iua.subject_name = s.name;
  if (s?.organization) iua.subject_organization = s.organization;
  if (s?.organizationId) iua.subject_organization_id = s.organizationId;
  if (s?.roles.length) iua.subject_role = s.roles.map(roleCoding);
  if (grant.purposes.length) iua.purpose_of_use = grant.purposes.map(purposeCoding);
  if (s?.npi) iua.national_provider_identifier = s.npi;
  const hcs: HcsClaims = {
    confidentiality: confidentialityCoding(grant.ceiling),
    obligations: grant.obligations.map(handlingCoding),
  };
  if (grant.breakTheGlass) hcs.break_the_glass = true;
  if (grant.testData) hcs.test_data = true;
  return Object.keys(iua).length ? { ihe_iua: iua, [HCS_CLAIM]: hcs } : { [HCS_CLAIM]: hcs };
}
