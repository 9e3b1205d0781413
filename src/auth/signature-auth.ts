//! LDK Node's default VSS credentials (vss-server's SignatureValidatingAuthorizer, vss-client's
//! SigsAuthProvider): the `authorization` header is
//!
//!   hex(33-byte compressed secp256k1 public key) ‖ hex(64-byte compact ECDSA signature) ‖ unix time
//!
//! (decimal seconds, no separators), signed over SHA-256(SIGNING_SALT ‖ public key ‖ the time text
//! exactly as sent). Any valid key is its own user. The time must lie within ±24 h of the
//! server's clock: vss-server's code allows a day (its comment says an hour). As upstream notes,
//! the header is not bound to the request, so it can be replayed within that window: serve it
//! over TLS off loopback.

import { createHash } from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { StoreError } from "../store/errors.js";

/** The fixed 64 bytes the signed message starts with. */
export const SIGNING_SALT = Buffer.from(`VSS Signature Authorizer Signing Salt Constant${".".repeat(18)}`, "ascii");

/** How far the header's time may be from the server's, in seconds (one day, as vss-server). */
export const SIGNATURE_WINDOW_SECONDS = 24 * 60 * 60;

const PUBKEY_HEX = 66;
const SIGNATURE_HEX = 128;
const HEADER = /^([0-9a-fA-F]{66})([0-9a-fA-F]{128})([0-9]{1,15})$/;

const unauthenticated = (reason: string): StoreError => new StoreError("unauthenticated", `invalid credentials: ${reason}`);

/** The digest a header's signature signs. */
export function signatureDigest(publicKey: Uint8Array, time: string): Uint8Array {
  return createHash("sha256").update(SIGNING_SALT).update(publicKey).update(Buffer.from(time, "ascii")).digest();
}

/** Whether `header` has the shape of a signature header (a bearer token never has). */
export function isSignatureHeader(header: string): boolean {
  return header.length > PUBKEY_HEX + SIGNATURE_HEX && /^[0-9a-fA-F]/.test(header) && !/\s/.test(header);
}

/**
 * The user a valid signature header names: its public key in lowercase hex. Throws
 * `unauthenticated` for a malformed, forged or stale header. `nowSeconds` is the server's clock.
 */
export function verifySignatureHeader(header: string, nowSeconds: number = Date.now() / 1000): string {
  const match = HEADER.exec(header);
  if (match === null) {
    throw unauthenticated("the signature header is not hex(public key, 33 bytes) + hex(signature, 64 bytes) + unix time");
  }
  const [, keyHex, signatureHex, time] = match as unknown as [string, string, string, string];
  const publicKey = Buffer.from(keyHex, "hex");
  const signature = Buffer.from(signatureHex, "hex");
  const signedAt = Number(time);
  if (Math.abs(nowSeconds - signedAt) > SIGNATURE_WINDOW_SECONDS) {
    throw unauthenticated("the signature header's time is more than 24 hours from the server's clock");
  }
  let valid: boolean;
  try {
    // Low-S only, as libsecp256k1 verifies (no malleable signatures).
    valid = secp256k1.verify(signature, signatureDigest(publicKey, time), publicKey, { prehash: false, lowS: true, format: "compact" });
  } catch {
    valid = false;
  }
  if (!valid) throw unauthenticated("the signature header's signature does not verify");
  return keyHex.toLowerCase();
}
