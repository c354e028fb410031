import { generateKeyPairSync, randomBytes } from "node:crypto";

/** A fresh ed25519 signing key in Synapse's file format: "ed25519 <key id> <unpadded base64 seed>". */
export function signingKey(): string {
  const { privateKey } = generateKeyPairSync("ed25519");
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  // The PKCS#8 encoding of an ed25519 key ends with its 32-byte seed, which is what Synapse stores.
  const seed = der
    .subarray(der.length - 32)
    .toString("base64")
    .replace(/=+$/, "");
  return `ed25519 a_${randomBytes(2).toString("hex")} ${seed}\n`;
}
