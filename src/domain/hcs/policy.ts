import { z } from 'zod';
import { CONFIDENTIALITY, SYSTEMS, isHandlingCode, isPurpose, purposeIsA, purposeLineage, type Confidentiality } from './vocabulary.js';
import { type Coding } from '../fhir/types.js';

/**
 * The hospital's HCS policy: which obligations and confidentiality ceiling follow from a purpose of
 * use or a role, and how strictly each check runs. Every check and rule has a mode, so a rule can be
 * rolled out as `audit-only` (evaluated and logged, not applied) before it is `enforce`d:
 *
 * - `enforce`: a failed check refuses the request (invalid_request); a rule's obligations and
 *   ceiling go into the token.
 * - `audit-only`: a failed check is logged at warn level (and audited) but the request goes on; a
 *   rule's effect is logged as what it would have added, and not applied.
 * - `disabled`: not evaluated.
 */

export const MODES = ['enforce', 'audit-only', 'disabled'] as const;
export type Mode = (typeof MODES)[number];

const mode = z.enum(MODES);
const purpose = z.string().refine(isPurpose, 'must be a v3-PurposeOfUse code such as TREAT');
const handling = z.string().refine(isHandlingCode, 'must be a v3 ObligationPolicy or RefrainPolicy code such as DEID or NOREUSE');
const ceiling = z.enum(CONFIDENTIALITY);
const coding = z.object({
  system: z.string().refine((v) => URL.canParse(v), 'must be an absolute URI'),
  code: z.string().min(1).max(64),
  display: z.string().max(200).optional(),
});

const ruleSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'lower-case letters, digits and -'),
    description: z.string().max(500).optional(),
    mode: mode.default('enforce'),
    /** The rule applies when any asserted purpose is one of these or lies under one (HRESCH covers CLINTRCH) … */
    purposes: z.array(purpose).min(1).optional(),
    /** … and, when roles are listed, the subject holds one of them (system and code). */
    roles: z.array(coding).min(1).optional(),
    obligations: z.array(handling).default([]),
    ceiling: ceiling.optional(),
  })
  .refine((r) => r.purposes || r.roles, 'a rule needs purposes, roles or both')
  .refine((r) => r.obligations.length || r.ceiling, 'a rule needs obligations, a ceiling or both');

export type PolicyRule = z.infer<typeof ruleSchema>;

/** Shipped defaults: the examples of the FHIR security module, conservative for secondary uses. */
export const DEFAULT_RULES: PolicyRule[] = [
  {
    id: 'research-deidentified',
    description: 'Research sees de-identified data and may not reuse it for anything else.',
    mode: 'enforce',
    purposes: ['HRESCH'],
    obligations: ['DEID', 'NOREUSE'],
    ceiling: 'N',
  },
  {
    id: 'payment-minimum-necessary',
    description: 'Payers get the minimum necessary, nothing above normal confidentiality.',
    mode: 'enforce',
    purposes: ['HPAYMT'],
    obligations: ['MINEC'],
    ceiling: 'N',
  },
  {
    id: 'operations-minimum-necessary',
    description: 'Operations get the minimum necessary.',
    mode: 'enforce',
    purposes: ['HOPERAT'],
    obligations: ['MINEC'],
  },
  {
    id: 'marketing-deidentified',
    description: 'Marketing never sees identifiable or sensitive data.',
    mode: 'enforce',
    purposes: ['HMARKT'],
    obligations: ['DEID', 'NOREUSE'],
    ceiling: 'M',
  },
  {
    id: 'public-health-minimum-necessary',
    description: 'Public health reporting: minimum necessary, no redisclosure without consent.',
    mode: 'enforce',
    purposes: ['PUBHLTH'],
    obligations: ['MINEC', 'NORDSCLCD'],
  },
  {
    id: 'emergency-audit-trail',
    description: 'Emergency access is kept in an audit trail and deleted after use.',
    mode: 'enforce',
    purposes: ['ETREAT'],
    obligations: ['AUDTR', 'DELAU'],
  },
];

const purposeList = z.array(purpose);

/**
 * Roles that make a Practitioner-linked user staff, who may grant user/ scopes (smart/launch/
 * user-scopes.ts): the v3-RoleClass codes of people acting for the organization.
 */
export const DEFAULT_STAFF_ROLES: Coding[] = [
  { system: SYSTEMS.roleClass, code: 'PROV', display: 'healthcare provider' },
  { system: SYSTEMS.roleClass, code: 'EMP', display: 'employee' },
  { system: SYSTEMS.roleClass, code: 'ASSIGNED', display: 'assigned entity' },
];

export const hcsPolicySchema = z.object({
  defaultCeiling: ceiling
    .default('N')
    .describe("confidentiality ceiling of subjects without a clearance of their own (users' SCIM `clearance`)"),
  /**
   * Permitting a purpose permits the purposes under it (TREAT permits COC). Emergency purposes
   * (ETREAT and below) are never permitted through a non-emergency parent: they are break-the-glass.
   */
  permitDescendants: z.boolean().default(true),
  checks: z
    .object({
      clientPurposes: mode.default('enforce').describe("requested purposes of use must be among the client's registered `purposes_of_use`"),
      userPurposes: mode
        .default('enforce')
        .describe("requested purposes of use must be among the user's SCIM `purposesOfUse` (or the policy's `userDefaults`)"),
      breakTheGlass: mode.default('enforce').describe("emergency purposes of use need the user's break-the-glass permission"),
    })
    .prefault({}),
  /** What a user whose SCIM record lists no `purposesOfUse` may assert, by kind of user. */
  userDefaults: z
    .object({
      patient: purposeList.default(['PATRQT']),
      caregiver: purposeList.default(['PATRQT']),
      practitioner: purposeList.default([]),
      other: purposeList.default([]),
    })
    .prefault({}),
  rules: z.array(ruleSchema).default(DEFAULT_RULES),
  /**
   * A user holding one of these roles (own or through a SCIM group) counts as staff, as does one
   * whose SCIM record says `staff: true`; only staff linked to a Practitioner may grant user/ scopes.
   * An empty list leaves the explicit flag as the only way.
   */
  staffRoles: z.array(coding).default(DEFAULT_STAFF_ROLES),
  breakTheGlass: z
    .object({
      /** Users holding one of these roles may break the glass (as may users with SCIM `breakTheGlass: true`). */
      roles: z.array(coding).default([]),
      accessTokenTtl: z
        .number()
        .int()
        .min(60)
        .max(3600)
        .default(900)
        .describe(
          'lifetime of emergency (break-the-glass) access tokens, seconds; never above the normal one, and no refresh token is issued',
        ),
      /** Ceiling of emergency access when it is higher than the user's own. */
      ceiling: ceiling.default('R'),
      reasonMinLength: z.number().int().min(1).max(200).default(10),
      webhookUrl: z
        .string()
        .refine((v) => URL.canParse(v) && ['http:', 'https:'].includes(new URL(v).protocol), 'must be an http(s) URL')
        .optional()
        .meta({ description: 'receives a JSON POST for every break-the-glass grant (privacy officer alerting)', docType: 'http(s) URL' }),
      webhookSecret: z
        .string()
        .min(32, 'needs at least 32 characters')
        .optional()
        .describe('signs webhook bodies: header `X-Smart-Authz-Signature: sha256=<hex HMAC>`'),
    })
    .prefault({}),
});

export type HcsPolicy = z.infer<typeof hcsPolicySchema>;

/** True when `held` includes one of `wanted` (same system and code). */
export function roleMatches(held: readonly Coding[], wanted: readonly Coding[]): boolean {
  return wanted.some((w) => held.some((h) => h.system === w.system && h.code === w.code));
}

export function ruleApplies(rule: PolicyRule, purposes: readonly string[], roles: readonly Coding[]): boolean {
  if (rule.purposes && !purposes.some((p) => rule.purposes!.some((r) => purposeIsA(p, r)))) return false;
  if (rule.roles && !roleMatches(roles, rule.roles)) return false;
  return true;
}

export interface RuleOutcome {
  obligations: string[];
  ceiling?: Confidentiality;
  /** Enforced rules that applied. */
  applied: string[];
  /** Audit-only rules that would have applied, with what they would have added. */
  wouldApply: Array<{ rule: string; obligations: string[]; ceiling?: Confidentiality }>;
}

/** The obligations and the lowest ceiling the enforced rules give for these purposes and roles. */
export function applyRules(policy: HcsPolicy, purposes: readonly string[], roles: readonly Coding[]): RuleOutcome {
  const obligations = new Set<string>();
  let lowest: Confidentiality | undefined;
  const applied: string[] = [];
  const wouldApply: RuleOutcome['wouldApply'] = [];
  for (const rule of policy.rules) {
    if (rule.mode === 'disabled' || !ruleApplies(rule, purposes, roles)) continue;
    if (rule.mode === 'audit-only') {
      wouldApply.push({ rule: rule.id, obligations: rule.obligations, ...(rule.ceiling ? { ceiling: rule.ceiling } : {}) });
      continue;
    }
    applied.push(rule.id);
    for (const o of rule.obligations) obligations.add(o);
    if (rule.ceiling && (!lowest || CONFIDENTIALITY.indexOf(rule.ceiling) < CONFIDENTIALITY.indexOf(lowest))) lowest = rule.ceiling;
  }
  return { obligations: [...obligations], ...(lowest ? { ceiling: lowest } : {}), applied, wouldApply };
}

/** Whether a permission list (of a client or a user) covers `code`, per the policy's inheritance. */
export function listPermits(list: readonly string[], code: string, permitDescendants: boolean): boolean {
  if (list.includes(code)) return true;
  if (!permitDescendants) return false;
  // Ancestors nearest first; an emergency purpose stops at ETREAT, so TREAT never permits BTG.
  const lineage = purposeLineage(code);
  for (let i = 1; i < lineage.length; i++) {
    if (lineage[i - 1] === 'ETREAT') return false;
    if (list.includes(lineage[i]!)) return true;
  }
  return false;
}
