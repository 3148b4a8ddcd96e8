import { createHmac, type KeyObject } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from "jose";

/** A 32-byte HS256 secret for tests. */
export const HMAC_SECRET = "test-secret-0123456789abcdef0123456789";

export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** SPKI PEM text of the public key. */
  readonly pem: string;
  readonly algorithm: "RS256" | "ES256";
}

export async function makeKeyPair(algorithm: "RS256" | "ES256"): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(algorithm, { extractable: true });
  const pair = { privateKey: privateKey as unknown as KeyObject, publicKey: publicKey as unknown as KeyObject };
  return { ...pair, pem: await exportSPKI(publicKey), algorithm };
}

export interface TokenOptions {
  sub?: string;
  /** Seconds from now; a negative value gives an expired token. Omitted: one hour. */
  expiresIn?: number | null;
  notBefore?: number;
  audience?: string;
  issuer?: string;
  kid?: string;
  claims?: JWTPayload;
}

/** Signs a token with the HMAC secret or a key pair. */
export async function signToken(key: KeyPair | string, options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const algorithm = typeof key === "string" ? "HS256" : key.algorithm;
  const jwt = new SignJWT({ ...options.claims })
    .setProtectedHeader(options.kid === undefined ? { alg: algorithm } : { alg: algorithm, kid: options.kid })
    .setIssuedAt(now)
    .setSubject(options.sub ?? "alice");
  if (options.expiresIn !== null) {
    jwt.setExpirationTime(now + (options.expiresIn ?? 3600));
  }
  if (options.notBefore !== undefined) {
    jwt.setNotBefore(now + options.notBefore);
  }
  if (options.audience !== undefined) {
    jwt.setAudience(options.audience);
  }
  if (options.issuer !== undefined) {
    jwt.setIssuer(options.issuer);
  }
  const signingKey = typeof key === "string" ? new TextEncoder().encode(key) : key.privateKey;
  return jwt.sign(signingKey);
}

/** Builds a token by hand: any header, any payload, HMAC-signed with `secret` (or unsigned). */
export function handmadeToken(header: object, payload: object, secret?: string | Buffer): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const signingInput = `${encode(header)}.${encode(payload)}`;
  if (secret === undefined) {
    return `${signingInput}.`;
  }
  return `${signingInput}.${createHmac("sha256", secret).update(signingInput).digest("base64url")}`;
}

/** Replaces the payload of a signed token, keeping its header and signature. */
export function tamper(token: string, changes: object): string {
  const [header, payload, signature] = token.split(".");
  const claims = { ...JSON.parse(Buffer.from(payload!, "base64url").toString()), ...changes };
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${signature}`;
}

/** A JWKS endpoint on loopback whose key set the test can change, counting fetches. */
export class JwksServer {
  keys: JWK[] = [];
  fetches = 0;
  private server: Server | undefined;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.fetches++;
      const body = JSON.stringify({ keys: this.keys });
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }

  /** Publishes a key pair's public key under a key id. */
  async add(pair: KeyPair, kid: string): Promise<void> {
    const jwk = await exportJWK(pair.publicKey);
    this.keys.push({ ...jwk, kid, alg: pair.algorithm, use: "sig" });
  }

  remove(kid: string): void {
    this.keys = this.keys.filter((key) => key.kid !== kid);
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) {
      return;
    }
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
