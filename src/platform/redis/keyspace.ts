/**
 * Every Redis key this server writes goes through here so the layout is documented in one place
 * (docs/architecture.md "Redis keys"). `prefix` namespaces one deployment (or one test file) inside a shared Redis.
 *
 * Keys that a single command or script touches together share a `{hash tag}` so the layout is
 * Redis Cluster safe; keys that are only ever touched by separate commands do not need to.
 */
/** Names of the audit trail's chains (defined with the trail in records/audit/chain.ts). */
export type AuditChainName = 'main' | 'archive' | `main-${number}`;

export class Keyspace {
  constructor(readonly prefix: string) {}

  /** oidc-provider model entry, e.g. `authz:oidc:AccessToken:{abc}`. */
  model(model: string, id: string): string {
    return `${this.prefix}oidc:${model}:{${id}}`;
  }

  grantIndex(grantId: string): string {
    return `${this.prefix}oidc:grant:{${grantId}}`;
  }

  sessionUid(uid: string): string {
    return `${this.prefix}oidc:sessionUid:{${uid}}`;
  }

  userCode(code: string): string {
    return `${this.prefix}oidc:userCode:{${code}}`;
  }

  /** Set of every registered client id (clients live under `model('Client', id)`). */
  clientIndex(): string {
    return `${this.prefix}clients`;
  }

  /** Pub/sub channel on which writers announce changed records (platform/redis/invalidation.ts). */
  invalidations(): string {
    return `${this.prefix}invalidate`;
  }

  /** Hash of signing keys, field = kid. Shares a hash tag with its version counter (one script writes both). */
  signingKeys(): string {
    return `${this.prefix}{signing-keys}`;
  }

  /** Bumped by every change to `signingKeys()`, so instances notice rotation with one GET. */
  signingKeysVersion(): string {
    return `${this.prefix}{signing-keys}:version`;
  }

  /**
   * Marks a destroyed grant so token writes still in flight for it are refused. Shares the grant's
   * hash tag so the revocation script can set it together with deleting the grant index.
   */
  revokedGrant(grantId: string): string {
    return `${this.prefix}oidc:grantRevoked:{${grantId}}`;
  }

  /**
   * What one account or client owns (platform/storage/owner-index.ts): a sorted set of `<Model>:<id>`
   * members (its Grants and Sessions, and the tokens of a client that belong to no grant), scored
   * by expiry in ms. `kind` is `account` or `client`; the id inside the hash tag keeps the index
   * and its revoked mark in one slot.
   */
  ownerIndex(kind: 'account' | 'client', id: string): string {
    return `${this.prefix}oidc:owner:{${kind}:${id}}`;
  }

  /** Set while an owner's access is being ended: writes of new entries for it are refused. */
  ownerRevoked(kind: 'account' | 'client', id: string): string {
    return `${this.prefix}oidc:ownerRevoked:{${kind}:${id}}`;
  }

  /**
   * An EHR launch context (smart/launch/launch-store.ts), keyed by a digest of the opaque launch
   * value so keys listed from Redis are not usable launch values. One key per command.
   */
  launch(digest: string): string {
    return `${this.prefix}launch:{${digest}}`;
  }

  /**
   * The launch context kept with a grant (oauth/tokens/grant-context.ts). Shares the grant's hash
   * tag so a script revoking the grant may delete it in the same slot.
   */
  grantContext(grantId: string): string {
    return `${this.prefix}oidc:grantContext:{${grantId}}`;
  }

  /**
   * When a grant last had a token issued (epoch ms), for the management page's "last used". Shares
   * the grant's hash tag; written with its own SET ... EX, never inside a script.
   */
  grantLastUsed(grantId: string): string {
    return `${this.prefix}oidc:grantLastUsed:{${grantId}}`;
  }

  /**
   * The registration policy of one RFC 7591 initial access token (oauth/clients/registration-tokens.ts):
   * hash of `kinds`, `scopes` and `uses` (registrations left), keyed by a digest of the token so
   * keys listed from Redis are not usable tokens. One key per command or script.
   */
  registrationToken(digest: string): string {
    return `${this.prefix}registration-token:{${digest}}`;
  }

  /**
   * A sign-in between its first factor and its second (smart/interaction/login/sign-in-progress.ts),
   * keyed by the interaction's uid: the browser holding that interaction's cookie is the only one
   * that can go on with it.
   */
  signInProgress(interactionUid: string): string {
    return `${this.prefix}signin:{${interactionUid}}`;
  }

  /** A one-time claim (`claimOnce`), e.g. a client-assertion `jti`; `digest` is a hash of the id. */
  once(namespace: string, digest: string): string {
    return `${this.prefix}once:${namespace}:{${digest}}`;
  }

  /**
   * Key prefix of one rate-limiter-flexible limiter, e.g. `authz:ratelimit:login-ip`; the library
   * appends `:<subject>` (an IP prefix, a user id). Each limiter command touches one key only.
   */
  rateLimit(limiter: string): string {
    return `${this.prefix}ratelimit:${limiter}`;
  }

  /**
   * An account's count of wrong passwords and password checks in flight (records/directory/lockout.ts), e.g.
   * `authz:ratelimit:login-account:<user id>`. Only ever touched by single-key scripts and commands.
   */
  loginFailures(userId: string): string {
    return `${this.rateLimit('login-account')}:${userId}`;
  }

  /*
   * A user's second factors (records/directory/factors/). Every key of one user shares the
   * `{mfa:<user id>}` hash tag: the scripts that accept a TOTP step, advance a WebAuthn counter,
   * confirm an enrolment or reset everything touch several of them at once (Cluster-safe), while
   * different users spread over the slots.
   */

  private mfaTag(userId: string): string {
    return `${this.prefix}{mfa:${userId}}`;
  }

  /** Hash of the user's TOTP and WebAuthn factors: field = factor id, value = its JSON record (TOTP secret sealed). */
  mfaFactors(userId: string): string {
    return `${this.mfaTag(userId)}:factors`;
  }

  /** Hash of what changes with use: `counter:<factor id>` (WebAuthn signature counter), `used:<factor id>` (ISO time). */
  mfaUsage(userId: string): string {
    return `${this.mfaTag(userId)}:usage`;
  }

  /** The last TOTP time step accepted for the user: a code is accepted only for a later step (single use). */
  mfaTotpStep(userId: string): string {
    return `${this.mfaTag(userId)}:totp-step`;
  }

  /** A TOTP secret shown to the user and not yet confirmed with a code (short TTL). */
  mfaTotpPending(userId: string): string {
    return `${this.mfaTag(userId)}:totp-pending`;
  }

  /** Set of SHA-256 hashes (base64url) of the user's unused recovery codes. */
  mfaRecoveryCodes(userId: string): string {
    return `${this.mfaTag(userId)}:recovery`;
  }

  /** A WebAuthn challenge for one binding (interaction or management session), single use; `digest` hashes the binding. */
  mfaChallenge(userId: string, digest: string): string {
    return `${this.mfaTag(userId)}:challenge:${digest}`;
  }

  /** Bumped by every reset: challenges handed out before it are refused. */
  mfaGeneration(userId: string): string {
    return `${this.mfaTag(userId)}:generation`;
  }

  /*
   * The SCIM user directory. Every user and group key shares the `{scim}` hash tag: one script
   * then writes a record, its unique userName index, its lookup indexes and group memberships
   * atomically, Cluster-safe. The price is that the whole directory lives in one slot.
   */

  /** Hash of one user: `json` (SCIM resource), `v` (version counter), `lm` (lastModified), `pw` (argon2id hash). */
  scimUser(id: string): string {
    return `${this.prefix}{scim}:user:${id}`;
  }

  /** String: the id of the user whose lower-cased userName this is (the uniqueness guard). */
  scimUserName(lowerUserName: string): string {
    return `${this.prefix}{scim}:userName:${lowerUserName}`;
  }

  /** Set of user ids with this externalId (case-exact). */
  scimUserExternalId(externalId: string): string {
    return `${this.prefix}{scim}:userExternalId:${externalId}`;
  }

  /** Set of user ids with this lower-cased emails.value. */
  scimUserEmail(lowerEmail: string): string {
    return `${this.prefix}{scim}:userEmail:${lowerEmail}`;
  }

  /** Sorted set of every user id, scored by creation time (paging and bounded scans). */
  scimUsers(): string {
    return `${this.prefix}{scim}:users`;
  }

  /** Set of the ids of the groups a user is a member of (reverse of `scimGroupMembers`). */
  scimUserGroups(userId: string): string {
    return `${this.prefix}{scim}:userGroups:${userId}`;
  }

  /** Hash of one group: `json`, `v`, `lm` (membership changes bump `v` too). */
  scimGroup(id: string): string {
    return `${this.prefix}{scim}:group:${id}`;
  }

  /** Set of the user ids in a group. */
  scimGroupMembers(groupId: string): string {
    return `${this.prefix}{scim}:groupMembers:${groupId}`;
  }

  /** Set of group ids with this lower-cased displayName. */
  scimGroupName(lowerDisplayName: string): string {
    return `${this.prefix}{scim}:groupName:${lowerDisplayName}`;
  }

  /** Set of group ids with this externalId (case-exact). */
  scimGroupExternalId(externalId: string): string {
    return `${this.prefix}{scim}:groupExternalId:${externalId}`;
  }

  /** Sorted set of every group id, scored by creation time. */
  scimGroups(): string {
    return `${this.prefix}{scim}:groups`;
  }

  /*
   * Federated sign-in (smart/interaction/federation/). A sign-in's `state` and what was verified
   * at the callback are single-use and short-lived, keyed by a digest so keys listed from Redis
   * are not usable values; one key per command. The links between directory users and upstream
   * subjects share the `{federation}` hash tag: one script checks and writes both directions.
   */

  /** String (JSON): one started federated sign-in (interaction, provider, nonce, PKCE verifier), ~10 min. */
  federationState(digest: string): string {
    return `${this.prefix}federation:state:{${digest}}`;
  }

  /** String (JSON): an upstream sign-in verified at the callback, waiting for its interaction page (single-use). */
  federationResult(digest: string): string {
    return `${this.prefix}federation:result:{${digest}}`;
  }

  /** String: the upstream identity (`iss` and `sub`) a user was first linked to through one provider. */
  federationUserLink(providerId: string, userId: string): string {
    return `${this.prefix}{federation}:user:${providerId}:${userId}`;
  }

  /** String: the user an upstream subject (digest of `iss` and `sub`) of one provider is linked to. */
  federationSubjectLink(providerId: string, digest: string): string {
    return `${this.prefix}{federation}:subject:${providerId}:${digest}`;
  }

  /*
   * Consent records (records/consent/consent-store.ts). Every consent key shares the `{consents}` hash
   * tag: one script stores a Consent, its Provenance, its search indexes and its outbox entry
   * together (Cluster-safe, all or nothing), and withdrawal updates them in one step too.
   */

  /** Hash of one Consent: `json` (the R4 resource), `v`, `status`, `patient`, `client`, `performer`, `scopes`, `end`, `date`, `rk`. */
  consent(id: string): string {
    return `${this.prefix}{consents}:consent:${id}`;
  }

  /** List of the Provenance resources (JSON) of one Consent, oldest first. */
  consentProvenance(consentId: string): string {
    return `${this.prefix}{consents}:provenance:${consentId}`;
  }

  /** Sorted set of a patient's Consent ids, scored by Consent.dateTime (ms). */
  consentsByPatient(patientId: string): string {
    return `${this.prefix}{consents}:byPatient:${patientId}`;
  }

  /** Sorted set of the Consent ids naming a client as actor, scored by Consent.dateTime (ms). */
  consentsByClient(clientId: string): string {
    return `${this.prefix}{consents}:byClient:${clientId}`;
  }

  /** Sorted set of the Consent ids one person decided (`Type/id` of the performer), scored by Consent.dateTime (ms). */
  consentsByPerformer(performer: string): string {
    return `${this.prefix}{consents}:byPerformer:${performer}`;
  }

  /** Sorted set of every Consent id, scored by Consent.dateTime (ms). */
  consentsAll(): string {
    return `${this.prefix}{consents}:all`;
  }

  /** Sorted set of the active permits of one (performer, client, patient); `digest` hashes the three. */
  consentsRemembered(digest: string): string {
    return `${this.prefix}{consents}:remembered:${digest}`;
  }

  /** Set of the grant ids tied to one Consent. */
  consentGrants(consentId: string): string {
    return `${this.prefix}{consents}:grants:${consentId}`;
  }

  /** The id of the Consent a grant is tied to. */
  grantConsent(grantId: string): string {
    return `${this.prefix}{consents}:grant:${grantId}`;
  }

  /** Stream of Consent ids still to be written to the configured FHIR server (consumer group). */
  consentOutbox(): string {
    return `${this.prefix}{consents}:outbox`;
  }

  /** Stream of outbox entries the FHIR server refused for good, kept for an operator to look at. */
  consentOutboxDead(): string {
    return `${this.prefix}{consents}:outboxDead`;
  }

  /*
   * The audit trail (src/audit). Each chain's keys share one hash tag: one script checks the
   * chain head, appends a batch of entries and writes their search indexes atomically, which is
   * what makes each hash chain one sequence even with several instances (Cluster-safe). `main` and
   * `archive` (disclosure events kept past the general retention, see records/audit/retention.ts) use
   * `{audit}`; the further shards `main-<k>` use `{audit-<k>}`, so in a Cluster they land in other
   * slots and usually on other masters (records/audit/chain.ts).
   */

  private auditTag(chain: AuditChainName): string {
    return chain === 'main' || chain === 'archive' ? '{audit}' : `{audit-${chain.slice(5)}}`;
  }

  /** Stream of chain entries: `seq`, `prev`, `hash`, `id`, `event` (canonical JSON). */
  auditStream(chain: AuditChainName): string {
    return `${this.prefix}${this.auditTag(chain)}:${chain}:stream`;
  }

  /** Hash holding the chain head: `seq`, `hash`, `t`. */
  auditHead(chain: AuditChainName): string {
    return `${this.prefix}${this.auditTag(chain)}:${chain}:head`;
  }

  /** Sorted set of signed checkpoints (compact JWS), scored by the seq they anchor. */
  auditCheckpoints(chain: AuditChainName): string {
    return `${this.prefix}${this.auditTag(chain)}:${chain}:checkpoints`;
  }

  /** Hash: AuditEvent id → seq of the entries in this chain (read by id). */
  auditLocation(chain: AuditChainName): string {
    return `${this.prefix}${this.auditTag(chain)}:${chain}:location`;
  }

  /**
   * Posting list of one search value in one chain: a string of the seqs of the entries that have
   * it, ascending, each 12 hex digits (records/audit/postings.ts). `param` is a search parameter name.
   */
  auditPostings(chain: AuditChainName, param: string, value: string): string {
    return `${this.prefix}${this.auditTag(chain)}:${chain}:post:${param}:${value}`;
  }

  /** Lease held by the instance that signs a chain's interval checkpoint (records/audit/trail.ts). */
  auditCheckpointLease(chain: AuditChainName): string {
    return chain === 'main' ? `${this.prefix}{audit}:checkpoint-lease` : `${this.prefix}${this.auditTag(chain)}:${chain}:checkpoint-lease`;
  }

  /**
   * How far PostgreSQL holds a chain (records/audit/shipper.ts): `seq` (every entry up to it is confirmed
   * there), `t` (its trail time), `at` (when it was confirmed, ms). Readers take entries up to
   * `seq` from PostgreSQL and the rest from Redis; the intake's bound counts from it.
   */
  auditShipped(chain: AuditChainName): string {
    return `${this.prefix}${this.auditTag(chain)}:${chain}:shipped`;
  }

  /** Lease held by the instance that ships a chain to PostgreSQL. */
  auditShipLease(chain: AuditChainName): string {
    return `${this.prefix}${this.auditTag(chain)}:${chain}:ship-lease`;
  }

  /** The trail's id (a UUID): which PostgreSQL trail this intake belongs to (records/audit/pg/connect.ts). */
  auditTrailId(): string {
    return `${this.prefix}{audit}:trail-id`;
  }

  /** Set of the shard names beyond `main` that have ever been written (readers look in each). */
  auditShards(): string {
    return `${this.prefix}{audit}:shards`;
  }

  /** Short-lived lock held by a purge, so two purges never interleave. */
  auditPurgeLock(): string {
    return `${this.prefix}{audit}:purgeLock`;
  }

  key(...parts: string[]): string {
    return `${this.prefix}${parts.join(':')}`;
  }
}
