import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { FactorError, type SecondFactorSettings, type StoredWebAuthn } from './types.js';

/**
 * WebAuthn ceremonies (@simplewebauthn/server) with this server's rules: user verification is
 * required both ways (a PIN or biometric, so the key alone is not enough), no attestation (we do not
 * vet authenticator models), only EdDSA, ES256 and RS256 keys, the issuer's origin and host as the
 * only origin and RP ID. Challenges are kept by the caller (single use, per binding).
 */

/** COSE algorithm ids: EdDSA, ES256, RS256. */
export const SUPPORTED_ALGORITHMS = [-8, -7, -257];
export const CHALLENGE_SECONDS = 300;

type Settings = Pick<SecondFactorSettings, 'rpId' | 'rpName' | 'origin'>;

export interface VerifiedKey {
  credentialId: string;
  publicKey: string;
  counter: number;
  transports?: string[];
  keyType: 'hwk' | 'swk';
}

const descriptor = (f: StoredWebAuthn) => ({ id: f.credentialId, ...(f.transports?.length ? { transports: f.transports } : {}) });

export async function registrationOptionsFor(
  settings: Settings,
  userId: string,
  user: { userName: string; displayName: string },
  registered: StoredWebAuthn[],
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpName: settings.rpName,
    rpID: settings.rpId,
    userName: user.userName,
    userDisplayName: user.displayName,
    // The user handle is the account id (a UUID): stable, and no personal data on the authenticator.
    userID: new TextEncoder().encode(userId),
    timeout: CHALLENGE_SECONDS * 1000,
    attestationType: 'none',
    excludeCredentials: registered.map(descriptor),
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
    supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
  });
}

/** The new credential, or a FactorError saying (without the browser's data) why it is refused. */
export async function checkRegistration(settings: Settings, response: RegistrationResponseJSON, challenge: string): Promise<VerifiedKey> {
  let result: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
  try {
    result = await verifyRegistrationResponse({
      response,
      expectedChallenge: challenge,
      expectedOrigin: settings.origin,
      expectedRPID: settings.rpId,
      requireUserPresence: true,
      requireUserVerification: true,
      supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
    });
  } catch {
    throw new FactorError(
      'The security key could not be registered: its answer does not match this site or this request. Please try again.',
    );
  }
  if (!result.verified) throw new FactorError('The security key could not be registered. Please try again.');
  const { credential, credentialDeviceType } = result.registrationInfo;
  return {
    credentialId: credential.id,
    publicKey: Buffer.from(credential.publicKey).toString('base64url'),
    counter: credential.counter,
    ...(credential.transports?.length ? { transports: credential.transports } : {}),
    keyType: credentialDeviceType === 'multiDevice' ? 'swk' : 'hwk',
  };
}

export async function authenticationOptionsFor(
  settings: Settings,
  registered: StoredWebAuthn[],
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: settings.rpId,
    allowCredentials: registered.map(descriptor),
    userVerification: 'required',
    timeout: CHALLENGE_SECONDS * 1000,
  });
}

/** The credential's new signature counter when the assertion is valid, else undefined (the reason is not kept: it may echo the request). */
export async function checkAssertion(
  settings: Settings,
  response: AuthenticationResponseJSON,
  challenge: string,
  factor: StoredWebAuthn,
  counter: number,
): Promise<number | undefined> {
  try {
    const result = await verifyAuthenticationResponse({
      response,
      expectedChallenge: challenge,
      expectedOrigin: settings.origin,
      expectedRPID: settings.rpId,
      credential: {
        id: factor.credentialId,
        publicKey: Buffer.from(factor.publicKey, 'base64url'),
        counter,
        ...(factor.transports ? { transports: factor.transports } : {}),
      },
      requireUserVerification: true,
    });
    return result.verified && result.authenticationInfo.userVerified ? result.authenticationInfo.newCounter : undefined;
  } catch {
    return undefined;
  }
}
