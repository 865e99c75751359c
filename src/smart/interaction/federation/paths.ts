/**
 * The federated sign-in's URLs (routes.ts serves them):
 *
 *   GET /interaction/:uid/federate/:provider?csrf=…   the sign-in page's button: off to the upstream
 *   GET /federation/:provider/callback                the upstream's answer (the registered redirect URI)
 *   GET /interaction/:uid/federated?result=…          back on the interaction: link, audit, hand over
 *
 * Starting is a link, not a form: a browser applies CSP `form-action` to every redirect after a
 * form post, and the upstream's authorization endpoint is only known from its discovery document,
 * too late for the sign-in page's policy. The link carries the page's CSRF token, checked as a form
 * post's would be.
 */

export function federateHref(uid: string, providerId: string, csrf: string): string {
  return `/interaction/${encodeURIComponent(uid)}/federate/${encodeURIComponent(providerId)}?csrf=${encodeURIComponent(csrf)}`;
}

export function federatedHref(uid: string, handOver: string): string {
  return `/interaction/${encodeURIComponent(uid)}/federated?result=${encodeURIComponent(handOver)}`;
}
