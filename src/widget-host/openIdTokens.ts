/**
 * One widget's OpenID tokens: a token is reused while it has a good part of its life left, concurrent
 * requests share one mint, and new ones are rate limited (`limits.openIdTokens`). Without this, 300
 * `get_openid` requests minted 300 tokens. Times are a monotonic clock's milliseconds.
 */
import { HostRefusalError } from "./errors.js";
import type { OpenIdToken } from "./openId.js";

/** Reuse a token while at least this much of its life is left, or half of it for short-lived tokens. */
const REUSE_MARGIN_MS = 5 * 60_000;

interface Cached {
  token: OpenIdToken;
  expiresAt: number;
  lifetimeMs: number;
}

/** Hands out one widget's tokens. */
export class OpenIdTokens {
  private cached: Cached | undefined;
  private minting: Promise<OpenIdToken> | undefined;

  constructor(
    /** Asks the homeserver for a new token. */
    private readonly mint: () => Promise<OpenIdToken>,
    /** Takes a token from the widget's mint bucket: 0 when allowed, else ms until it would be. */
    private readonly mayMint: (now: number) => number,
    private readonly now: () => number,
  ) {}

  /** A token for the widget: the cached one while it is fresh enough, else a new one. */
  get(): Promise<OpenIdToken> {
    const now = this.now();
    const cached = this.cached;
    if (cached && cached.expiresAt - now >= Math.min(REUSE_MARGIN_MS, cached.lifetimeMs / 2))
      return Promise.resolve(this.withRemaining(cached, now));
    if (this.minting) return this.minting;
    const wait = this.mayMint(now);
    if (wait > 0) {
      // Out of mints: a token that is still valid for a while beats none.
      if (cached && cached.expiresAt - now >= 10_000) return Promise.resolve(this.withRemaining(cached, now));
      return Promise.reject(
        new HostRefusalError(429, {
          errcode: "M_LIMIT_EXCEEDED",
          error: "Too many OpenID tokens requested by this widget",
          retry_after_ms: wait,
        }),
      );
    }
    const minting = this.mint().then((token) => {
      const seconds = token.expires_in;
      // A token without a usable lifetime is handed on but never reused.
      if (typeof seconds === "number" && Number.isFinite(seconds) && seconds > 0)
        this.cached = { token, expiresAt: this.now() + seconds * 1000, lifetimeMs: seconds * 1000 };
      return token;
    });
    this.minting = minting;
    const clear = (): void => {
      if (this.minting === minting) this.minting = undefined;
    };
    minting.then(clear, clear);
    return minting;
  }

  /** The cached token with `expires_in` saying what is left of it. */
  private withRemaining(cached: Cached, now: number): OpenIdToken {
    return { ...cached.token, expires_in: Math.max(0, Math.floor((cached.expiresAt - now) / 1000)) };
  }
}
