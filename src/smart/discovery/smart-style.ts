import { createHash } from 'node:crypto';
import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { Config } from '../../platform/config/schema.js';

/**
 * The SMART style document (App Launch 2.2 "Styling", capability `context-style`) and the EHR
 * launch defaults that point to it. An EHR that names neither a style nor a banner preference in
 * POST /api/launch still gets both into the app's token response, so an app embedded in it can
 * match the look of this server's own pages (views/static/app.css, light theme).
 */

export const SMART_STYLE_PATH = '/smart-style.json';

/** Every property SMART defines, with this server's page colours and metrics. */
export const SMART_STYLE: Readonly<Record<string, string>> = Object.freeze({
  color_background: '#f6f7f9',
  color_error: '#b42318',
  color_highlight: '#0b5cad',
  color_modal_backdrop: 'rgba(27, 31, 36, 0.5)',
  color_success: '#1a7f37',
  color_text: '#1b1f24',
  dim_border_radius: '6px',
  dim_font_size: '16px',
  dim_spacing_size: '16px',
  font_family_body: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  font_family_heading: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
});

/** The banner and style of EHR launches whose EHR named none (smart/interaction/record-context/context-recorder.ts). */
export function ehrLaunchDefaults(config: Pick<Config, 'issuer' | 'smart'>): { need_patient_banner: boolean; smart_style_url: string } {
  return {
    need_patient_banner: config.smart.needPatientBanner,
    smart_style_url: config.smart.styleUrl ?? `${config.issuer}${SMART_STYLE_PATH}`,
  };
}

/**
 * Serves the style document to any origin (apps fetch it from the browser). SMART requires a new
 * URL when the contents change; the built-in document changes only with a release, and the ETag
 * lets caches revalidate cheaply within the day they may keep it.
 */
export function serveSmartStyle(router: Router, cors: (ctx: Context, next: Next) => Promise<void>): void {
  const body = JSON.stringify(SMART_STYLE);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  router.all(SMART_STYLE_PATH, cors, (ctx) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD, OPTIONS');
      ctx.body = { error: 'invalid_request', error_description: 'use GET' };
      return;
    }
    ctx.set('Cache-Control', 'public, max-age=86400');
    ctx.set('ETag', etag);
    if (ctx.get('If-None-Match') === etag) {
      ctx.status = 304;
      return;
    }
    ctx.type = 'application/json';
    ctx.body = body;
  });
}
