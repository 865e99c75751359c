import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { HcsPolicy } from './policy.js';

/**
 * Break the glass: a permitted clinician asserts an emergency purpose (ETREAT, BTG, ERTREAT) and
 * must say why. The grant gets short-lived tokens, no refresh token, and every use is flagged for
 * review: a warn-level log line and, when configured, a signed webhook call to a privacy officer's
 * system. The alert never delays the clinician: the webhook is called in the background.
 */

export const MAX_REASON = 500;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;

export class ReasonError extends Error {}

/** The typed reason, trimmed and checked: long enough to mean something, short enough to store. */
export function breakTheGlassReason(raw: string | null | undefined, minLength: number): string {
  const reason = (raw ?? '').replace(CONTROL, '').replace(/\s+/g, ' ').trim();
  if (!reason) throw new ReasonError('Emergency access needs a reason. Say why you need this record now.');
  if (reason.length < minLength)
    throw new ReasonError(`The reason is too short: write at least ${minLength} characters so a reviewer can understand it.`);
  if (reason.length > MAX_REASON) throw new ReasonError(`The reason is too long: at most ${MAX_REASON} characters.`);
  return reason;
}

export interface BreakTheGlassEvent {
  grantId: string;
  clientId: string;
  accountId: string;
  fhirUser?: string;
  patient?: string;
  purposes: string[];
  reason: string;
  /** ISO time of the grant. */
  at: string;
}

export const WEBHOOK_SIGNATURE_HEADER = 'X-Smart-Authz-Signature';
const WEBHOOK_TIMEOUT_MS = 5000;
const WEBHOOK_ATTEMPTS = 3;

export class BreakTheGlassAlerts {
  constructor(
    private readonly policy: HcsPolicy['breakTheGlass'],
    private readonly logger: Logger | undefined,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** Logs now and starts the webhook delivery; resolves as soon as the log line is written. */
  raise(event: BreakTheGlassEvent): Promise<void> | undefined {
    this.logger?.warn({ breakTheGlass: event }, 'break the glass: emergency access granted, flagged for review');
    if (!this.policy.webhookUrl) return undefined;
    return this.deliver(event);
  }

  private async deliver(event: BreakTheGlassEvent): Promise<void> {
    const body = JSON.stringify({ type: 'break-the-glass', ...event });
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (this.policy.webhookSecret)
      headers[WEBHOOK_SIGNATURE_HEADER] = `sha256=${createHmac('sha256', this.policy.webhookSecret).update(body).digest('hex')}`;
    for (let attempt = 1; attempt <= WEBHOOK_ATTEMPTS; attempt++) {
      try {
        const res = await this.fetchImpl(this.policy.webhookUrl!, {
          method: 'POST',
          headers,
          body,
          redirect: 'error',
          signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
        });
        await res.body?.cancel();
        if (res.ok) return;
        this.logger?.error({ status: res.status, attempt, grantId: event.grantId }, 'break-the-glass webhook answered with an error');
      } catch (err) {
        this.logger?.error(
          { err: { message: (err as Error).message }, attempt, grantId: event.grantId },
          'break-the-glass webhook could not be reached',
        );
      }
      if (attempt < WEBHOOK_ATTEMPTS) await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
    }
  }
}
