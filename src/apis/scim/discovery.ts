import {
  ALL_SCHEMAS,
  RESOURCE_TYPES,
  type AttributeDef,
  type ResourceTypeDef,
  type SchemaDef,
} from '../../records/directory/scim/schema-definitions.js';

/**
 * The discovery endpoints (RFC 7644 §4): what this server supports, truthfully. Bulk is not
 * offered; filters return at most `maxPageSize` resources per page; PATCH, sorting, ETags and
 * password changes are.
 */

export const SERVICE_PROVIDER_CONFIG_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';
export const RESOURCE_TYPE_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType';
export const SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';

export function serviceProviderConfig(base: string, limits: { maxPageSize: number; maxFilterScan: number }): Record<string, unknown> {
  return {
    schemas: [SERVICE_PROVIDER_CONFIG_SCHEMA],
    documentationUri: 'https://www.rfc-editor.org/rfc/rfc7644',
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: limits.maxPageSize },
    changePassword: { supported: true },
    sort: { supported: true },
    etag: { supported: true },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'OAuth Bearer Token',
        description: `An access token issued by this server to an administration client (client_credentials grant) with the scim scope, requested for this API (scope=scim; its audience is ${base}). Filters that cannot use an index (equality on userName, externalId, emails.value or id) examine at most ${limits.maxFilterScan} resources.`,
        specUri: 'https://www.rfc-editor.org/rfc/rfc6750',
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${base}/ServiceProviderConfig` },
  };
}

export function resourceTypeResource(base: string, rt: ResourceTypeDef): Record<string, unknown> {
  return {
    schemas: [RESOURCE_TYPE_SCHEMA],
    id: rt.name,
    name: rt.name,
    endpoint: rt.endpoint,
    description: rt.description,
    schema: rt.schema.id,
    schemaExtensions: rt.extensions.map((e) => ({ schema: e.id, required: false })),
    meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/${rt.name}` },
  };
}

function publicAttribute(def: AttributeDef): Record<string, unknown> {
  const { subAttributes, restrictValues: _restrictValues, ...rest } = def;
  return { ...rest, ...(subAttributes ? { subAttributes: subAttributes.map(publicAttribute) } : {}) };
}

export function schemaResource(base: string, schema: SchemaDef): Record<string, unknown> {
  return {
    schemas: [SCHEMA_SCHEMA],
    id: schema.id,
    name: schema.name,
    description: schema.description,
    attributes: schema.attributes.map(publicAttribute),
    meta: { resourceType: 'Schema', location: `${base}/Schemas/${schema.id}` },
  };
}

export const allResourceTypes = (base: string) => RESOURCE_TYPES.map((rt) => resourceTypeResource(base, rt));
export const allSchemas = (base: string) => ALL_SCHEMAS.map((s) => schemaResource(base, s));
