import { errors } from 'oidc-provider';

/** A decision or reference the consent module cannot turn into a valid Consent. */
export class ConsentInputError extends Error {
  override name = 'ConsentInputError';
}

export class ConsentNotFoundError extends Error {
  override name = 'ConsentNotFoundError';

  constructor(readonly consentId: string) {
    super(`Consent ${consentId} does not exist`);
  }
}

/** The Consent is in a state the operation does not apply to (e.g. withdrawing a refusal). */
export class ConsentStateError extends Error {
  override name = 'ConsentStateError';

  constructor(
    readonly consentId: string,
    readonly status: string,
    message: string,
  ) {
    super(message);
  }
}

export type ConsentProblem = 'missing' | 'inactive' | 'expired' | 'not-covered';

/**
 * A token may not be issued for a grant: its Consent is missing, withdrawn, expired or does not
 * cover the scopes. It is oidc-provider's InvalidGrant, so thrown from the token path (e.g.
 * extraTokenClaims) the client gets `invalid_grant` and the reason stays in `error_detail`.
 */
export class ConsentRequiredError extends errors.InvalidGrant {
  constructor(
    readonly problem: ConsentProblem,
    readonly grantId: string,
    readonly consentId?: string,
  ) {
    super(PROBLEM_DETAIL[problem]);
    this.name = 'ConsentRequiredError';
  }
}

const PROBLEM_DETAIL: Record<ConsentProblem, string> = {
  missing: 'no patient consent is recorded for this grant',
  inactive: 'the patient consent for this grant was withdrawn',
  expired: 'the patient consent for this grant has expired',
  'not-covered': 'the patient consent for this grant does not cover the requested scopes',
};
