import { forbidden, guestForbidden, missingToken, unknownToken } from "./errors.js";
import type { IdGenerator } from "./ids.js";

export interface Requester {
  userId: string;
  deviceId: string;
  isGuest: boolean;
  accessToken: string;
}

/** A logged-in device, as `TestHomeserver.createUser` and `loginDevice` return it. */
export interface Credentials {
  /** Full user id, `@localpart:serverName`. */
  userId: string;
  /** Bearer token of this device; keep it out of logs. */
  accessToken: string;
  /** Device the token belongs to. */
  deviceId: string;
}

interface UserRecord {
  userId: string;
  isGuest: boolean;
  devices: Set<string>;
}

/** Users, devices and access tokens. Passwords are not checked: this server exists for tests. */
export class UserStore {
  private readonly users = new Map<string, UserRecord>();
  private readonly tokens = new Map<string, Requester>();

  public constructor(
    private readonly serverName: string,
    private readonly ids: IdGenerator,
  ) {}

  public userIdFor(localpart: string): string {
    return localpart.startsWith("@") ? localpart : `@${localpart}:${this.serverName}`;
  }

  public exists(userId: string): boolean {
    return this.users.has(userId);
  }

  public isGuest(userId: string): boolean {
    return this.users.get(userId)?.isGuest ?? false;
  }

  public register(localpart: string, opts: { guest?: boolean; deviceId?: string } = {}): Credentials {
    const userId = this.userIdFor(localpart);
    if (this.users.has(userId)) throw new MatrixUserInUse();
    if (!/^@[a-z0-9._=\-/+]+:.+$/.test(userId)) throw new Error(`invalid localpart for ${userId}`);
    this.users.set(userId, { userId, isGuest: opts.guest ?? false, devices: new Set() });
    return this.login(userId, opts.deviceId);
  }

  /** A new access token for an existing user, on `deviceId` (a new device unless given). */
  public login(userIdOrLocalpart: string, deviceId?: string): Credentials {
    const userId = this.userIdFor(userIdOrLocalpart);
    const user = this.users.get(userId);
    if (!user) throw forbidden("Invalid username or password");
    const device = deviceId ?? this.ids.deviceId();
    user.devices.add(device);
    const accessToken = this.ids.accessToken(userId.slice(1, userId.indexOf(":")));
    this.tokens.set(accessToken, { userId, deviceId: device, isGuest: user.isGuest, accessToken });
    return { userId, accessToken, deviceId: device };
  }

  public logout(accessToken: string): void {
    this.tokens.delete(accessToken);
  }

  public devices(userId: string): string[] {
    return [...(this.users.get(userId)?.devices ?? [])];
  }

  /** Looks a token up without failing (for the request log and fault matching). */
  public peek(accessToken: string | undefined): Requester | undefined {
    return accessToken === undefined ? undefined : this.tokens.get(accessToken);
  }

  /** Synapse's `get_user_by_req`: 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN, guests optionally refused. */
  public authenticate(accessToken: string | undefined, opts: { allowGuest?: boolean } = {}): Requester {
    if (accessToken === undefined) throw missingToken();
    const requester = this.tokens.get(accessToken);
    if (!requester) throw unknownToken();
    if (requester.isGuest && opts.allowGuest === false) throw guestForbidden();
    return requester;
  }
}

export class MatrixUserInUse extends Error {
  public constructor() {
    super("User ID already taken.");
  }
}

/** Access token from `Authorization: Bearer` or the deprecated `access_token` query parameter. */
export function extractAccessToken(
  authorization: string | undefined,
  query: URLSearchParams,
): string | undefined {
  if (authorization) {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    if (match) return match[1];
  }
  return query.get("access_token") ?? undefined;
}

export function localpartOf(userId: string): string {
  const colon = userId.indexOf(":");
  return userId.slice(1, colon === -1 ? undefined : colon);
}

export function serverOf(userId: string): string {
  const colon = userId.indexOf(":");
  return colon === -1 ? "" : userId.slice(colon + 1);
}
