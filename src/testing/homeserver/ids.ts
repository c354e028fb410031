import { randomBytes } from "node:crypto";

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** Crypto-random ASCII letters, like Synapse's `random_string`. */
function randomLetters(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const byte of bytes) out += LETTERS[byte % LETTERS.length];
  return out;
}

/**
 * Every id the server hands out. Delay ids are bearer capabilities since Synapse 1.143 (no ownership
 * check), so by default they are unguessable; `deterministic` trades that for reproducible tests.
 */
export class IdGenerator {
  private counter = 0;

  public constructor(
    private readonly serverName: string,
    private readonly deterministic: boolean,
  ) {}

  private next(): string {
    this.counter += 1;
    return String(this.counter).padStart(6, "0");
  }

  public delayId(): string {
    return this.deterministic ? `syd_${this.next()}` : `syd_${randomLetters(20)}`;
  }

  public eventId(): string {
    return this.deterministic
      ? `$ev${this.next()}`
      : `$${randomBytes(32).toString("base64url").slice(0, 43)}`;
  }

  public roomId(): string {
    return this.deterministic
      ? `!room${this.next()}:${this.serverName}`
      : `!${randomLetters(18)}:${this.serverName}`;
  }

  public accessToken(localpart: string): string {
    return this.deterministic
      ? `syt_${localpart}_${this.next()}`
      : `syt_${randomBytes(24).toString("base64url")}`;
  }

  public deviceId(): string {
    return this.deterministic ? `DEV${this.next()}` : randomLetters(10).toUpperCase();
  }

  public filterId(): string {
    this.counter += 1;
    return String(this.counter);
  }
}
