import { createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from "jose";
import { ConfigError, type Config } from "../config.js";
import { HeraldError, protocolError } from "../errors.js";
import { AnonymousAuthenticator, ANONYMOUS, type Authenticator, type Identity } from "./identity.js";

type AuthConfig = Config["auth"];
type Algorithm = "HS256" | "RS256" | "ES256";

/** Algorithms a JWKS key may sign with; HMAC keys never come from a JWKS. */
const JWKS_ALGORITHMS: readonly Algorithm[] = ["RS256", "ES256"];

/** Longest accepted token, in characters, so parsing cost stays bounded. */
export const MAX_TOKEN_LENGTH = 16_384;

/** Longest accepted `sub`, in characters. */
const MAX_USER_LENGTH = 256;

/** Maximum entries in a channels or publish claim. */
const MAX_CLAIM_ENTRIES = 1_000;

/** A configured key and the one algorithm it may verify. */
interface StaticKey {
  readonly key: KeyObject;
  readonly algorithm: Algorithm;
}

/**
 * Verifies JWT connection tokens (JWS compact form) with the keys from the
 * `auth` settings: an HS256 secret, RS256 or ES256 public keys, and a JWKS
 * URL. Each key verifies only its own algorithm, so an RSA public key can
 * never be used as an HMAC secret (algorithm confusion), and `alg: none`
 * is rejected before any key is tried.
 */
export class JwtAuthenticator implements Authenticator {
  readonly enabled = true;
  private readonly keys: StaticKey[];
  private readonly jwks: JWTVerifyGetKey | undefined;
  private readonly algorithms: Set<Algorithm>;
  /** jose takes the clock tolerance in whole seconds, as JWT times are. */
  private readonly skewSeconds: number;

  constructor(private readonly settings: AuthConfig) {
    this.keys = loadStaticKeys(settings);
    this.skewSeconds = Math.floor(settings.clockSkewMs / 1000);
    this.jwks =
      settings.jwksUrl === ""
        ? undefined
        : createRemoteJWKSet(parseJwksUrl(settings.jwksUrl), {
            cacheMaxAge: settings.jwksCacheMs,
            cooldownDuration: settings.jwksCooldownMs,
            timeoutDuration: settings.jwksTimeoutMs,
          });
    this.algorithms = new Set(this.keys.map((key) => key.algorithm));
    if (this.jwks) {
      JWKS_ALGORITHMS.forEach((algorithm) => this.algorithms.add(algorithm));
    }
    if (this.algorithms.size === 0) {
      throw new ConfigError("auth: no token key is configured; set auth.hmacSecret, auth.publicKeys or auth.jwksUrl.");
    }
  }

  /** Whether the settings configure any token key. */
  static configured(settings: AuthConfig): boolean {
    return settings.hmacSecret !== "" || settings.publicKeys.length > 0 || settings.jwksUrl !== "";
  }

  /**
   * Returns the identity a token grants, or the anonymous identity when no
   * token is given. Throws a `token_*` error that names the failed check.
   */
  async authenticate(token: string | undefined): Promise<Identity> {
    if (token === undefined || token === "") {
      return ANONYMOUS;
    }
    if (token.length > MAX_TOKEN_LENGTH) {
      throw protocolError("token_malformed", `The token is longer than ${MAX_TOKEN_LENGTH} characters.`);
    }
    const algorithm = this.algorithmOf(token);
    const payload = await this.verify(token, algorithm);
    return this.identityOf(payload);
  }

  private algorithmOf(token: string): Algorithm {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (error) {
      throw protocolError("token_malformed", "The token is not a JWT in JWS compact form (header.payload.signature).", error);
    }
    if (typeof alg !== "string" || !this.algorithms.has(alg as Algorithm)) {
      const allowed = [...this.algorithms].join(", ");
      throw protocolError("token_alg_not_allowed", `Token algorithm ${JSON.stringify(alg)} is not allowed; this node accepts ${allowed}.`);
    }
    return alg as Algorithm;
  }

  /**
   * Tries each configured key of the token's algorithm, then the JWKS. A
   * signature failure on one static key moves on to the next; any other
   * failure (expiry, audience) is final because the signature did verify.
   */
  private async verify(token: string, algorithm: Algorithm): Promise<JWTPayload> {
    let failure: unknown;
    for (const candidate of this.keys) {
      if (candidate.algorithm !== algorithm) {
        continue;
      }
      try {
        return (await jwtVerify(token, candidate.key, this.verifyOptions([algorithm]))).payload;
      } catch (error) {
        if (!(error instanceof errors.JWSSignatureVerificationFailed)) {
          throw tokenError(error);
        }
        failure = error;
      }
    }
    if (this.jwks && JWKS_ALGORITHMS.includes(algorithm)) {
      try {
        return (await jwtVerify(token, this.jwks, this.verifyOptions([algorithm]))).payload;
      } catch (error) {
        // A static key's signature failure is more precise than a key set without the token's kid.
        if (failure === undefined || !(error instanceof errors.JWKSNoMatchingKey)) {
          failure = error;
        }
      }
    }
    throw tokenError(failure ?? new errors.JWKSNoMatchingKey());
  }

  private verifyOptions(algorithms: Algorithm[]): JWTVerifyOptions {
    const options: JWTVerifyOptions = {
      algorithms,
      clockTolerance: this.skewSeconds,
    };
    if (this.settings.audience.length > 0) {
      options.audience = [...this.settings.audience];
    }
    if (this.settings.issuer.length > 0) {
      options.issuer = [...this.settings.issuer];
    }
    return options;
  }

  private identityOf(payload: JWTPayload): Identity {
    const user = payload.sub;
    if (typeof user !== "string" || user === "" || user.length > MAX_USER_LENGTH) {
      throw protocolError("token_invalid_claims", `The token needs a sub claim of 1 to ${MAX_USER_LENGTH} characters.`);
    }
    // Expiry moves by the allowed skew, so the node ends the connection when it would reject the token.
    const expiresAt = typeof payload.exp === "number" ? (payload.exp + this.skewSeconds) * 1000 : undefined;
    return Object.freeze({
      user,
      anonymous: false,
      subscribe: readPatterns(payload, this.settings.subscribeClaim),
      publish: readPatterns(payload, this.settings.publishClaim),
      expiresAt,
    });
  }
}

/** Chooses the JWT authenticator when any token key is configured, else the anonymous one. */
export function createAuthenticator(settings: AuthConfig): Authenticator {
  return JwtAuthenticator.configured(settings) ? new JwtAuthenticator(settings) : new AnonymousAuthenticator();
}

function readPatterns(payload: JWTPayload, claim: string): readonly string[] {
  const value = Object.hasOwn(payload, claim) ? payload[claim] : undefined;
  if (value === undefined) {
    return Object.freeze([]);
  }
  const valid =
    Array.isArray(value) &&
    value.length <= MAX_CLAIM_ENTRIES &&
    value.every((entry) => typeof entry === "string" && entry.length > 0 && entry.length <= 256);
  if (!valid) {
    throw protocolError(
      "token_invalid_claims",
      `The ${claim} claim must be an array of at most ${MAX_CLAIM_ENTRIES} channel names or patterns.`,
    );
  }
  return Object.freeze([...(value as string[])]);
}

/** Maps a failure from jose to the Herald error code that names it. */
function tokenError(error: unknown): HeraldError {
  if (error instanceof HeraldError) {
    return error;
  }
  if (error instanceof errors.JWTExpired) {
    return protocolError("token_expired", "The token has expired (exp); refresh it.", error);
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case "nbf":
        return protocolError("token_not_yet_valid", undefined, error);
      case "aud":
        return protocolError("token_wrong_audience", undefined, error);
      case "iss":
        return protocolError("token_wrong_issuer", undefined, error);
      default:
        return protocolError("token_invalid_claims", `The ${error.claim} claim is invalid: ${error.message}`, error);
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return protocolError("token_invalid_signature", undefined, error);
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return protocolError("token_alg_not_allowed", undefined, error);
  }
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return protocolError("token_unknown_key", undefined, error);
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid || error instanceof errors.JOSENotSupported) {
    return protocolError("token_malformed", `The token is malformed: ${error.message}`, error);
  }
  // What is left are key set fetch failures: timeouts, HTTP errors, invalid JSON.
  return protocolError("token_keys_unavailable", undefined, error);
}

function loadStaticKeys(settings: AuthConfig): StaticKey[] {
  const keys: StaticKey[] = [];
  if (settings.hmacSecret !== "") {
    const secret = Buffer.from(settings.hmacSecret, "utf8");
    // RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
    if (secret.length < 32) {
      throw new ConfigError("auth.hmacSecret: an HS256 secret must be at least 32 bytes (256 bits).");
    }
    keys.push({ key: createSecretKey(secret), algorithm: "HS256" });
  }
  settings.publicKeys.forEach((entry, index) => {
    keys.push(loadPublicKey(entry, `auth.publicKeys[${index}]`));
  });
  return keys;
}

function loadPublicKey(entry: string, setting: string): StaticKey {
  let pem = entry;
  if (!entry.trimStart().startsWith("-----BEGIN")) {
    try {
      pem = readFileSync(entry, "utf8");
    } catch (error) {
      throw new ConfigError(`${setting}: cannot read the key file ${entry}: ${(error as Error).message}`);
    }
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new ConfigError(`${setting}: not a PEM public key or certificate: ${(error as Error).message}`);
  }
  if (key.asymmetricKeyType === "rsa") {
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
      throw new ConfigError(`${setting}: RSA keys must have at least 2048 bits.`);
    }
    return { key, algorithm: "RS256" };
  }
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") {
    return { key, algorithm: "ES256" };
  }
  throw new ConfigError(`${setting}: use an RSA key (RS256) or an EC P-256 key (ES256).`);
}

function parseJwksUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`auth.jwksUrl: ${JSON.stringify(text)} is not a URL.`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ConfigError("auth.jwksUrl: use an https (or http) URL.");
  }
  return url;
}
