//! `authenticate(call) → Principal`: the one place every surface (gRPC, VSS, Connect) learns who
//! is calling, from a bearer token, a JWT, a client certificate, LDK Node's VSS signature header,
//! or nobody (open mode).

import type { PeerCertificate } from "node:tls";
import type { Logger } from "../log.js";
import { StoreError } from "../store/errors.js";
import { INTERNAL_STORE_PREFIX, isInternalStore, VSS_STORE_PREFIX } from "../store/names.js";
import { isSignatureHeader, verifySignatureHeader } from "./signature-auth.js";
import { Identities } from "./identities-file.js";
import { SigsAllowList, signingKeyPrincipal } from "./sigs-allow-list.js";
import { JwtVerifier, type JwtSettings } from "./jwt.js";
import type { Quota } from "../store/types.js";
import { OPEN_PRINCIPAL, type Principal } from "./principal.js";

export type AuthMode = "none" | "tokens" | "jwt" | "mtls" | "sigs";
export const AUTH_MODES: readonly AuthMode[] = ["none", "tokens", "jwt", "mtls", "sigs"];

export interface AuthSettings {
  readonly modes: readonly AuthMode[];
  /** The identities file (`tokens`, and roles for `mtls` subjects). */
  readonly tokensFile?: string;
  readonly jwt?: JwtSettings;
  /** `sigs`: the only public keys accepted (`--sigs-allow-file`); any valid key without it. */
  readonly sigsAllowFile?: string;
  /** The quota of identities that carry none of their own. */
  readonly defaultQuota?: Quota;
}

/** What a surface hands over about a request: its `authorization` header and its TLS peer. */
export interface Credentials {
  readonly authorization?: string;
  readonly peerCertificate?: PeerCertificate;
}

/** The credentials of a request as the caller presented them, or a refusal. */
export type Authenticate = (credentials: Credentials) => Promise<Principal>;

const unauthenticated = (reason: string): StoreError => new StoreError("unauthenticated", reason);

export class Authenticator {
  private identities: Identities | undefined;
  private jwt: JwtVerifier | undefined;
  private allowList: SigsAllowList | undefined;

  private constructor(
    private readonly settings: AuthSettings,
    private readonly logger: Logger,
  ) {}

  /** Loads the identities file, JWT keys and allow-list the modes need; throws an Error naming what is wrong. */
  static async open(settings: AuthSettings, logger: Logger): Promise<Authenticator> {
    const authenticator = new Authenticator(settings, logger);
    await authenticator.load();
    return authenticator;
  }

  get modes(): readonly AuthMode[] {
    return this.settings.modes;
  }

  private async load(): Promise<void> {
    const { modes, tokensFile, jwt, sigsAllowFile } = this.settings;
    if (modes.includes("tokens") && tokensFile === undefined) throw new Error("--auth tokens needs --tokens-file");
    if (sigsAllowFile !== undefined && !modes.includes("sigs")) throw new Error("--sigs-allow-file needs --auth sigs");
    const identities = tokensFile === undefined ? undefined : Identities.load(tokensFile);
    const verifier = modes.includes("jwt") ? await JwtVerifier.load(jwt ?? { storeClaim: "sub" }) : undefined;
    const allowList = sigsAllowFile === undefined ? undefined : SigsAllowList.load(sigsAllowFile);
    // All loaded: swap together, so a call never sees half a reload.
    this.identities = identities;
    this.jwt = verifier;
    this.allowList = allowList;
  }

  /** Re-reads the identities file, JWT keys and allow-list; on failure keeps the old ones and says why. */
  async reload(): Promise<boolean> {
    try {
      await this.load();
      this.logger.info({ modes: this.settings.modes }, "credentials reloaded");
      return true;
    } catch (error) {
      this.logger.error({ err: (error as Error).message }, "credentials not reloaded: keeping the previous ones");
      return false;
    }
  }

  readonly authenticate: Authenticate = async (credentials) => {
    const principal = await this.identify(credentials);
    // VSS stores live under store ids of their own: no identity may own one directly.
    if (principal.storeId.startsWith(VSS_STORE_PREFIX)) {
      throw unauthenticated(`invalid credentials: store ids starting with "${VSS_STORE_PREFIX}" are reserved for VSS stores`);
    }
    if (isInternalStore(principal.storeId)) {
      throw unauthenticated(`invalid credentials: store ids starting with "${INTERNAL_STORE_PREFIX}" are reserved for the server's own records`);
    }
    const quota = this.settings.defaultQuota;
    return principal.quota !== undefined || quota === undefined || principal === OPEN_PRINCIPAL ? principal : { ...principal, quota };
  };

  private async identify({ authorization, peerCertificate }: Credentials): Promise<Principal> {
    const { modes } = this.settings;
    if (authorization !== undefined && authorization !== "") {
      if (modes.includes("sigs") && isSignatureHeader(authorization)) return this.fromSignature(authorization);
      const match = /^Bearer\s+(\S+)$/i.exec(authorization);
      if (match === null) throw unauthenticated("invalid credentials: the authorization header is not \"Bearer <token>\"");
      const token = match[1]!;
      const known = modes.includes("tokens") ? this.identities?.byToken(token) : undefined;
      if (known !== undefined) return known;
      // A JWT has three dot-separated parts; anything else is an unknown token.
      if (this.jwt !== undefined && token.split(".").length === 3) return this.jwt.verify(token);
      throw unauthenticated("invalid credentials: unknown token");
    }
    if (modes.includes("mtls") && peerCertificate !== undefined && Object.keys(peerCertificate).length > 0) {
      return this.fromCertificate(peerCertificate);
    }
    if (modes.includes("none")) return OPEN_PRINCIPAL;
    const signature = modes.includes("sigs") ? ", a VSS signature header" : "";
    throw unauthenticated(`missing credentials: send authorization: Bearer <token>${signature} or a client certificate`);
  }

  /** The subject's common name (or first DNS name) names the store; the identities file may give roles. */
  private fromCertificate(certificate: PeerCertificate): Principal {
    // A subject may repeat CN; the first one counts.
    const commonName = [certificate.subject?.CN].flat()[0];
    const subject = commonName ?? /DNS:([^,\s]+)/.exec(certificate.subjectaltname ?? "")?.[1];
    if (subject === undefined || subject === "") throw unauthenticated("invalid credentials: the client certificate names no subject");
    return this.identities?.byCertificateSubject(subject) ?? { name: `cert:${subject}`, storeId: subject, roles: new Set(["write"]) };
  }

  /**
   * `--auth sigs`: LDK Node's default VSS credentials. The signing key is the user: its hex names
   * the caller's store, with read and write rights. Any valid key is its own user, as in VSS,
   * unless an allow-list is loaded: then only the keys it lists, with the name and quota it gives.
   */
  private fromSignature(header: string): Principal {
    const publicKey = verifySignatureHeader(header);
    if (this.allowList === undefined) return signingKeyPrincipal(publicKey);
    const listed = this.allowList.principalOf(publicKey);
    if (listed === undefined) throw unauthenticated(`invalid credentials: the public key ${publicKey} is not on this server's allow-list (--sigs-allow-file)`);
    return listed;
  }
}
