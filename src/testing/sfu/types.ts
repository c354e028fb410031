/** The public shapes of the test token service's delegated delayed leave (MSC4195). */

/**
 * A participant as the test plays the SFU: `connected()` / `disconnected()` match every delegation
 * of `userId` whose other fields equal the ones given (a field left out matches anything).
 */
export interface SfuParticipant {
  /** The Matrix user (the OpenID token's `sub`, or the homeserver's `X-Matrix-User-Identifier`). */
  userId: string;
  /** The `m.rtc.member` id (`member.id` / `member_id`). */
  memberId?: string;
  /** The device (`member.claimed_device_id`, `/sfu/get`'s `device_id`). */
  deviceId?: string;
  roomId?: string;
  slotId?: string;
}

/**
 * How the delegation reached the service: lk-jwt-service's own endpoint, Element Call 0.26's re-sent
 * token request with `delay_id`/`delay_timeout`/`delay_cs_api_url`, or MSC4195's homeserver endpoint
 * (through the homeserver's MSC4512 proxy).
 */
export type DelegationVia = "delegate_delayed_leave" | "get_token" | "sfu/get" | "homeserver";

/**
 * `waiting`: for the participant to connect to the SFU; `connected`: restarting the delayed leave
 * with headroom; `sending`: the participant left (or never came), sending the leave; `ended`: see
 * `DelegationOutcome`.
 */
export type DelegationState = "waiting" | "connected" | "sending" | "ended";

/**
 * Why a delegation ended. `sent`: the service sent the leave. `already-final`: the send was answered
 * 404/409 (already sent or cancelled). `not-found`: a restart was answered 404 (the delayed event is
 * gone). `finalised`: a restart was answered 409. `expired`: no restart got through before the delay
 * ran out (the server fired the leave itself). `send-failed`: the send never got through.
 * `replaced`: a newer delegation for the same (room, slot, member, user). `closed`: the service stopped.
 */
export type DelegationOutcome =
  "sent" | "already-final" | "not-found" | "finalised" | "expired" | "send-failed" | "replaced" | "closed";

/** One delegation as the service holds it (a snapshot). */
export interface DelegationRecord {
  via: DelegationVia;
  userId: string;
  roomId: string;
  slotId: string;
  /** Undefined for `/sfu/get` (Element Call's legacy request names a device, not a member). */
  memberId?: string;
  deviceId?: string;
  delayId: string;
  /** The delay the service works with (looked up on the homeserver, or the request's `delay_timeout`). */
  delayMs: number;
  state: DelegationState;
  outcome?: DelegationOutcome;
  /** Date.now() when the delegation was accepted. */
  createdAt: number;
  /** Restarts the homeserver accepted. */
  restarts: number;
  lastRestartAt?: number;
  /** When the delayed leave fires unless restarted again, as far as the service knows. */
  deadline: number;
  endedAt?: number;
}

/** A request the service made to the homeserver. */
export interface ServiceHomeserverRequest {
  /** `restart` / `send` a delayed event, `lookup` its delay and room, or `userinfo` (check an OpenID token). */
  action: "restart" | "send" | "lookup" | "userinfo";
  /** `appservice`: the `as_token` with `?user_id=`; `none`: no token (lk-jwt-service ≤0.6). */
  auth: "appservice" | "none";
  delayId?: string;
  /** The user asserted with `?user_id=` (appservice), or whose token was checked. */
  userId?: string;
  /** Date.now() when sent. */
  at: number;
  /** The HTTP status; 0 when there was no answer (network error, timeout, aborted). */
  status: number;
  /** How long the request took. */
  durationMs: number;
}

/** What a refusing service answers every delegation request (and probe) with. */
export interface RefusalAnswer {
  /** Default 400. A 404 makes the service look as if it had no delegation at all. */
  status?: number;
  /** Default `M_INVALID_PARAM`. */
  errcode?: string;
  error?: string;
}

/** Options of the delegation duty (`startTestSfuAuth({ delegation })`); all optional. */
export interface DelegationOptions {
  /**
   * How the service manages delayed events on the homeserver. `appservice` (default; lk-jwt-service
   * ≥0.7): as the user, with its `as_token` and `?user_id=`; it also looks each delay id up as the user
   * (GET one, or the listing on servers without it), so a foreign id or another room is 400
   * M_INVALID_PARAM and the delay is the server's. Needs the registration
   * (`appServiceRegistration()`) on the homeserver. `none` (lk-jwt-service ≤0.6): restart/send with no
   * token (Synapse's unstable endpoints take none); nothing is looked up, so the delay is the request's
   * `delay_timeout` and ownership is not checked.
   */
  auth?: "appservice" | "none";
  /** Delays under this are refused (400 M_INVALID_PARAM). Default 1 h (MSC4195). */
  minDelayMs?: number;
  /**
   * Restart this long before the delayed leave would fire. Default a fifth of the delay
   * (lk-jwt-service restarts at 80 % of it).
   */
  restartHeadroomMs?: number;
  /** How long to wait for the participant to connect before sending the leave. Default min(1 h, delay). */
  connectTimeoutMs?: number;
  /** First wait before retrying a failed restart/send; ×1.5 per attempt (±50 %), at most 60 s. Default 1000. */
  retryMs?: number;
  /** Local timeout of each request to the homeserver. Default 5000 (lk-jwt-service's). */
  requestTimeoutMs?: number;
}

/** Application service identity of the token service (tokens are generated when left out). */
export interface SfuAppServiceOptions {
  id?: string;
  asToken?: string;
  hsToken?: string;
  senderLocalpart?: string;
  /** The users it may act as (`namespaces.users`, non-exclusive). Default every user: `@.*`. */
  userRegex?: string;
}
