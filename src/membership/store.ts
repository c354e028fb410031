/**
 * The call's members, kept incrementally: every membership record keyed by where it lives (today the
 * state key of an `org.matrix.msc3401.call.member` event), each event read once (`parseMembershipEvent`,
 * kept until the event changes), and only what changed judged again (time, the sender's room membership,
 * the server's facts: `judgeMember`, `facts.ts`). The list stays sorted between changes; an expiry heap
 * says when the answer changes by itself. Pure: time comes in as an argument, no timers, no RxJS (the one
 * side effect: a malformed sticky membership is said at debug, once per event).
 *
 * Cost: a change of K records costs O(K log N) plus the new list (O(N) pointers) when it changed; a
 * change that touches no record (a chat message, a member who is not in the call) costs nothing here.
 * Members are compared by event id (and the judgement), never by their contents.
 *
 * Record kinds: `"state"` (a state event per key), `"unkeyed"` (events without a state key, which
 * can only be rejected) and `"sticky"` (MatrixRTC 2.0: sticky `org.matrix.msc4143.rtc.member` events,
 * keyed by sender and sticky key, read by `sticky.ts`). The kinds feed the same candidates; judging,
 * ordering, expiry and change tracking do not depend on the kind. Two rules join them:
 * - js-sdk's: a state membership whose state key is the sticky key of a current sticky event of the
 *   same sender is not listed (the device moved to the sticky dialect). js-sdk matches any sender's
 *   sticky key; we only the sender's own, so that nobody can hide another user's membership.
 * - A slot closed by its `org.matrix.msc4143.rtc.slot` state event lists no sticky member (js-sdk's
 *   rule; state memberships, which predate slots, are not affected).
 * Between two sticky events at one (sender, sticky key), MSC4354's rule picks the current one: the one
 * that expires last (by `origin_server_ts` + duration, which every reader agrees on), then the highest
 * event id. js-sdk 43 picks the highest `origin_server_ts`; with equal durations (every writer we know
 * uses 1 h) both pick the same event.
 */
import loglevel from "loglevel";
import { CALL_MEMBER_EVENT_TYPE, DEFAULT_SLOT, type Slot } from "./content.js";
import { isJoinContent, orderTsOf, runSince, type RunFacts } from "./facts.js";
import {
  RTC_MEMBER_EVENT_TYPE,
  RTC_SLOT_EVENT_TYPE,
  parseStickyMembershipEvent,
  slotIdOf,
  stickyExpiresAt,
  stickyKeyOf,
  stickyServerExpiry,
  stickyWins,
} from "./sticky.js";
import {
  isActiveMembershipContent,
  judgeMember,
  membershipOfEvent,
  parseMembershipEvent,
  type CallMember,
  type MembershipLookup,
  type ParseOptions,
  type RejectedMembership,
  type StateEventLike,
} from "./parse.js";

/**
 * Where a membership record lives, and what it is keyed by: `"state"`, a call membership state event by
 * its state key; `"unkeyed"`, an event without a state key (read only to be reported), by its position.
 */
export type RecordKind = "state" | "unkeyed" | "sticky";

/** What the store reads from a source: the room's call membership events and its room memberships. */
export interface StoreInput {
  /** False until the source has the room's state. */
  synced: boolean;
  /** Every current call membership event (for a full read). */
  callMemberEvents: Iterable<unknown>;
  /**
   * Every current sticky membership event (`org.matrix.msc4143.rtc.member`, for a full read). An event
   * may carry `expiresAt` (ms, our clock) when its source computed it (js-sdk does on receipt).
   */
  stickyMemberEvents?: Iterable<unknown>;
  /** The room's `org.matrix.msc4143.rtc.slot` state event for a slot id, when there is one. */
  slotEventOf?: (slotId: string) => unknown;
  /** A user's `m.room.member` membership, undefined when unknown. */
  membershipOf?: MembershipLookup;
  /** A user's current `m.room.member` event, when the source has it. */
  memberEventOf?: (userId: string) => StateEventLike | undefined;
}

/** What changed since the previous input (the source vouches that nothing else did). */
export interface StoreChanges {
  /**
   * The call membership and `m.room.member` events that became current, in the order they applied;
   * also sticky membership events that arrived, and the slot's state event when it changed.
   */
  events: readonly unknown[];
}

/**
 * One membership record. Kept small (a call of thousands holds thousands): no reference to the
 * source's event object, the run facts inline, the static reading as the candidate or rejection only.
 */
interface Entry {
  readonly kind: RecordKind;
  readonly key: string;
  /** First-seen order: ties in `orderTs` keep it (js-sdk's stable sort over its state map). */
  readonly seq: number;
  /** The current event's id and content identify it (see `sameEvent`). */
  eventId: string | undefined;
  content: unknown;
  /** What the event says on its own: a candidate member, or a rejection; neither when ignored. */
  candidate: CallMember | undefined;
  staticRejection: RejectedMembership | undefined;
  /** The event's run: its content is active, and since when (when known). */
  runActive: boolean;
  runSince: number | undefined;
  /** The sender this entry is indexed under (candidates only). */
  linkedTo: string | undefined;
  /** The sender left the room while this event was current: it stays left behind. */
  leftBehind: boolean;
  removed: boolean;
  /** The judgement. */
  member: CallMember | undefined;
  rejection: RejectedMembership | undefined;
  /** The member object this entry sits in the sorted list under. */
  listed: CallMember | undefined;
  /** The expiry this entry's heap item is for. */
  heapAt: number | undefined;
  /** Sticky records: when the event stops being sticky (our clock), and by the server's facts. */
  stickyUntil: number | undefined;
  serverExpiry: number;
  /** The last full read that listed this key. */
  seenIn: number;
}

interface UserRecord {
  membership: string | undefined;
  /** Their current stay in the room: joined now (`present`), since when (when known). */
  present: boolean | undefined;
  since: number | undefined;
  memberEventId: string | undefined;
  memberContent: unknown;
  hasMemberEvent: boolean;
  /** The apply that last looked this user up (a full read looks each user up once). */
  lookedUpIn: number;
  /** Usually one (one device in the call). */
  entries: Entry[];
}

/** Counters for tests and the bench: how much work the store did. */
export interface StoreStats {
  /** Passes that judged at least one record (one per changed source snapshot or expiry instant). */
  evaluations: number;
  /** Events read (`parseMembershipEvent`). */
  parses: number;
  /** Records judged. */
  judged: number;
}

/**
 * Every store's work added up, for tests and the bench (not part of the public API): a test reads the
 * difference before and after what it does.
 */
export const storeCounters: StoreStats = { evaluations: 0, parses: 0, judged: 0 };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Read a field of an untrusted object without throwing (throwing getters, proxies). */
function field(event: unknown, name: string): unknown {
  try {
    return isRecord(event) ? event[name] : undefined;
  } catch {
    return undefined;
  }
}

const ROOM_MEMBER_EVENT_TYPE = "m.room.member";

/** Malformed sticky memberships are said at debug (once per event: a record is read once). */
const log = loglevel.getLogger("matrixrtc-membership");

/** A key with no state yet, seen by a store that has read the room: the next event starts a run. */
const ABSENT: RunFacts = Object.freeze({ active: false });

function byOrder(a: Entry, b: Entry): number {
  return a.listed!.orderTs - b.listed!.orderTs || a.seq - b.seq;
}

/** A binary min-heap of (expiresAt, entry); stale items are skipped when they surface. */
class ExpiryHeap {
  private readonly at: number[] = [];
  private readonly items: Entry[] = [];

  get size(): number {
    return this.at.length;
  }

  push(at: number, entry: Entry): void {
    let i = this.at.length;
    this.at.push(at);
    this.items.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.at[parent] <= at) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  peek(): [number, Entry] | undefined {
    return this.at.length ? [this.at[0], this.items[0]] : undefined;
  }

  pop(): void {
    const last = this.at.length - 1;
    this.swap(0, last);
    this.at.pop();
    this.items.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.at.length && this.at[l] < this.at[m]) m = l;
      if (r < this.at.length && this.at[r] < this.at[m]) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }

  clear(): void {
    this.at.length = 0;
    this.items.length = 0;
  }

  private swap(i: number, j: number): void {
    [this.at[i], this.at[j]] = [this.at[j], this.at[i]];
    [this.items[i], this.items[j]] = [this.items[j], this.items[i]];
  }
}

/** Options of the store. */
export interface CallMemberStoreOptions {
  /** Default `{application: "m.call", id: "ROOM"}`. */
  slot?: Slot;
  /** Count only senders whose room membership is `join`. Default true. */
  requireJoinedSender?: boolean;
}

/** The call's members for one slot, kept up to date change by change. */
export class CallMemberStore {
  /** False until the source has the room's state. */
  synced = false;
  /** How much work was done (tests count evaluations and parses). */
  readonly stats: StoreStats = { evaluations: 0, parses: 0, judged: 0 };

  private readonly slot: Slot;
  private readonly requireJoined: boolean;
  /** The records of each kind, by key. */
  private readonly records: Record<RecordKind, Map<string, Entry>> = {
    state: new Map(),
    unkeyed: new Map(),
    sticky: new Map(),
  };
  /** The slot is closed by its `rtc.slot` state event: no sticky member is listed. */
  private slotClosed = false;
  private slotEventId: string | undefined;
  private slotContent: unknown;
  private readonly users = new Map<string, UserRecord>();
  private readonly dirty = new Set<Entry>();
  private readonly rejections = new Set<Entry>();
  private readonly heap = new ExpiryHeap();
  private list: Entry[] = [];
  private seq = 0;
  private membersCache: CallMember[] | undefined = [];
  private rejectedCache: RejectedMembership[] | undefined = [];
  private membershipOf: MembershipLookup | undefined;
  private memberEventOf: ((userId: string) => StateEventLike | undefined) | undefined;
  private changedMembers = false;
  private changedRejected = false;
  /** A synced input was read: a key that appears after that is new state (no run before it). */
  private loaded = false;
  /** Counts applies, so that a full read looks every user up once. */
  private applyCount = 0;

  constructor(options: CallMemberStoreOptions = {}) {
    this.slot = Object.freeze({ ...(options.slot ?? DEFAULT_SLOT) });
    this.requireJoined = options.requireJoinedSender ?? true;
  }

  /** Read a whole input: every key in it is compared, keys missing from it are dropped. */
  applyFull(input: StoreInput, now: number): void {
    this.useInput(input);
    this.applyCount++;
    // Each key keeps its first position (its place in the source's state map: `seq` is given once) and
    // takes its last value (a later event at the same key is read after it). Only call membership events
    // are kept (others are never members, never reported), and those without a state key, which are
    // reported as malformed.
    const pass = this.applyCount;
    const empty =
      this.records.state.size === 0 && this.records.unkeyed.size === 0 && this.records.sticky.size === 0;
    let unkeyed = 0;
    try {
      for (const event of input.callMemberEvents) {
        const stateKey = field(event, "state_key");
        if (typeof stateKey !== "string") this.upsert("unkeyed", String(unkeyed++), event, now).seenIn = pass;
        else if (field(event, "type") === CALL_MEMBER_EVENT_TYPE)
          this.upsert("state", stateKey, event, now).seenIn = pass;
      }
    } catch {
      // A throwing iterable: use what was read.
    }
    try {
      if (input.stickyMemberEvents)
        for (const event of input.stickyMemberEvents)
          if (field(event, "type") === RTC_MEMBER_EVENT_TYPE) this.upsertSticky(event, now).seenIn = pass;
    } catch {
      // A throwing iterable: use what was read.
    }
    this.updateSlot(this.readSlotEvent(input));
    // Keys missing from this input are gone (none can be, the first time).
    if (!empty)
      for (const records of Object.values(this.records))
        for (const entry of records.values()) if (entry.seenIn !== pass) this.markRemoved(entry);
    for (const [userId, user] of this.users)
      if (user.lookedUpIn !== this.applyCount) this.refreshUser(userId, user);
    this.settle(now);
    if (input.synced) this.loaded = true;
  }

  /** Read only what changed. */
  applyChanges(input: StoreInput, changes: StoreChanges, now: number): void {
    this.useInput(input);
    this.applyCount++;
    for (const event of changes.events) {
      const stateKey = field(event, "state_key");
      const type = field(event, "type");
      if (type === RTC_MEMBER_EVENT_TYPE && stateKey === undefined) {
        this.upsertSticky(event, now);
        continue;
      }
      if (typeof stateKey !== "string") continue;
      if (type === ROOM_MEMBER_EVENT_TYPE) {
        // Only senders of memberships are followed; others are looked up when they write one.
        const user = this.users.get(stateKey);
        if (user) this.refreshUser(stateKey, user, event as StateEventLike);
      } else if (type === CALL_MEMBER_EVENT_TYPE) this.upsert("state", stateKey, event, now);
      else if (type === RTC_SLOT_EVENT_TYPE && stateKey === slotIdOf(this.slot)) this.updateSlot(event);
    }
    this.settle(now);
    if (input.synced) this.loaded = true;
  }

  /** Judge again every member whose expiry is due at `now`. */
  expireDue(now: number): void {
    for (let top = this.heap.peek(); top && top[0] <= now; top = this.heap.peek()) {
      this.heap.pop();
      const [at, entry] = top;
      if (entry.heapAt === at) {
        entry.heapAt = undefined;
        // A sticky event past its time is gone (as from js-sdk's store), not only expired.
        if (entry.kind === "sticky" && entry.stickyUntil !== undefined && entry.stickyUntil <= now)
          this.markRemoved(entry);
        else this.dirty.add(entry);
      }
    }
    this.settle(now);
  }

  /** The soonest expiry among the members (undefined without members). */
  nextExpiryAt(): number | undefined {
    for (let top = this.heap.peek(); top; top = this.heap.peek()) {
      const [at, entry] = top;
      if (entry.heapAt === at) return at;
      this.heap.pop();
    }
    return undefined;
  }

  /** The members, oldest first (by `orderTs`, ties in first-seen order). The same array until a change. */
  members(): CallMember[] {
    this.membersCache ??= this.list.map((e) => e.listed!);
    return this.membersCache;
  }

  /** The membership records that do not count, and why. The same array until a change. */
  rejected(): RejectedMembership[] {
    this.rejectedCache ??= [...this.rejections].map((e) => e.rejection!);
    return this.rejectedCache;
  }

  /** What changed since the previous call: the list, the rejections. */
  takeChanges(): { members: boolean; rejected: boolean } {
    const changes = { members: this.changedMembers, rejected: this.changedRejected };
    this.changedMembers = false;
    this.changedRejected = false;
    return changes;
  }

  private useInput(input: StoreInput): void {
    this.synced = input.synced;
    this.membershipOf = input.membershipOf;
    this.memberEventOf = input.memberEventOf;
  }

  /** A record is gone (its key left the source's state, or its sticky time ran out). */
  private markRemoved(entry: Entry): void {
    entry.removed = true;
    this.dirty.add(entry);
    if (entry.kind === "sticky") this.touchShadowed(entry);
  }

  /** The state membership a sticky record hides (same sender, state key = sticky key) is judged again. */
  private touchShadowed(sticky: Entry): void {
    const at = sticky.key.indexOf("\n");
    if (at <= 0) return;
    const state = this.records.state.get(sticky.key.slice(at + 1));
    if (state && state.linkedTo === sticky.key.slice(0, at)) this.dirty.add(state);
  }

  /** The slot's `rtc.slot` state event, from a full input. */
  private readSlotEvent(input: StoreInput): unknown {
    try {
      return input.slotEventOf?.(slotIdOf(this.slot));
    } catch {
      return undefined;
    }
  }

  /**
   * Take the slot's `rtc.slot` state event (undefined: there is none). Closed (js-sdk's `isSlotClosed`):
   * an event whose content is not `status: "open"` with this slot's application type.
   */
  private updateSlot(event: unknown): void {
    const rawId = field(event, "event_id");
    const eventId = typeof rawId === "string" ? rawId : undefined;
    const content = field(event, "content");
    if (eventId === this.slotEventId && content === this.slotContent) return;
    this.slotEventId = eventId;
    this.slotContent = content;
    const application = field(content, "application");
    const closed =
      event !== undefined &&
      event !== null &&
      !(field(content, "status") === "open" && field(application, "type") === this.slot.application);
    if (closed === this.slotClosed) return;
    this.slotClosed = closed;
    for (const entry of this.records.sticky.values()) {
      this.dirty.add(entry);
      this.touchShadowed(entry);
    }
  }

  /**
   * Put a sticky membership event under (sender, sticky key), if it wins over the one held there
   * (MSC4354: the one that expires last, then the highest event id). Returns the key's record.
   */
  private upsertSticky(event: unknown, now: number): Entry {
    const sender = field(event, "sender");
    const stickyKey = stickyKeyOf(field(event, "content"));
    const rawId = field(event, "event_id");
    const eventId = typeof rawId === "string" ? rawId : undefined;
    // Without a sender or a sticky key it is no membership (parsed only to be reported): keyed apart.
    const key =
      typeof sender === "string" && sender !== "" && stickyKey !== undefined
        ? `${sender}\n${stickyKey}`
        : `\n${eventId ?? String(this.seq)}`;
    const held = this.records.sticky.get(key);
    if (held && !held.removed && !this.sameEvent(held, eventId, field(event, "content"))) {
      const serverExpiry = isRecord(event) ? stickyServerExpiry(event) : 0;
      if (!stickyWins({ serverExpiry, eventId }, { serverExpiry: held.serverExpiry, eventId: held.eventId }))
        return held;
    }
    const entry = this.upsert("sticky", key, event, now);
    this.touchShadowed(entry);
    return entry;
  }

  /** Put the current event of one key; re-read it only if it is another event. */
  private upsert(kind: RecordKind, key: string, event: unknown, now: number): Entry {
    const records = this.records[kind];
    let entry = records.get(key);
    const rawId = field(event, "event_id");
    const eventId = typeof rawId === "string" ? rawId : undefined;
    const content = field(event, "content");
    if (entry && !entry.removed && this.sameEvent(entry, eventId, content)) return entry;
    const sticky = kind === "sticky";
    let stickyUntil: number | undefined;
    if (sticky && isRecord(event)) {
      // The source's own reading when it has one (js-sdk computes it on receipt), else ours, now.
      const given = field(event, "expiresAt");
      stickyUntil = typeof given === "number" && Number.isFinite(given) ? given : stickyExpiresAt(event, now);
    }
    const parsed = sticky
      ? parseStickyMembershipEvent(event, this.slot, stickyUntil)
      : parseMembershipEvent(event, this.slot);
    if (sticky && parsed.kind === "rejected")
      log.debug(
        `sticky membership ${parsed.rejection.eventId ?? "(no event id)"} of ${parsed.rejection.sender} ignored: ` +
          `${parsed.rejection.reason} (${parsed.rejection.details.join("; ")})`,
      );
    this.stats.parses++;
    storeCounters.parses++;
    // Sticky memberships have no run across events: each event stands alone.
    const active = !sticky && (parsed.kind === "candidate" || isActiveMembershipContent(content));
    const ts = field(event, "origin_server_ts");
    // The run facts of what this replaces: ours (kept in the entry), or "absent" for a new key once
    // the room was read (the fields are reused as a RunFacts without allocating one).
    const previous: RunFacts | undefined =
      entry && !entry.removed
        ? { eventId: entry.eventId, active: entry.runActive, since: entry.runSince }
        : this.loaded
          ? ABSENT
          : undefined;
    const since =
      typeof ts === "number" && Number.isFinite(ts)
        ? runSince(ts, field(event, "unsigned"), active, isActiveMembershipContent, previous)
        : undefined;
    if (!entry) {
      entry = {
        kind,
        key,
        seq: this.seq++,
        eventId,
        content,
        candidate: undefined,
        staticRejection: undefined,
        runActive: false,
        runSince: undefined,
        linkedTo: undefined,
        leftBehind: false,
        removed: false,
        member: undefined,
        rejection: undefined,
        listed: undefined,
        heapAt: undefined,
        seenIn: -1,
        stickyUntil: undefined,
        serverExpiry: 0,
      };
      records.set(key, entry);
    }
    entry.removed = false;
    entry.eventId = eventId;
    entry.content = content;
    entry.candidate = parsed.kind === "candidate" ? parsed.member : undefined;
    entry.staticRejection = parsed.kind === "rejected" ? parsed.rejection : undefined;
    entry.runActive = active;
    entry.runSince = since;
    entry.stickyUntil = stickyUntil;
    entry.serverExpiry = sticky && isRecord(event) ? stickyServerExpiry(event) : 0;
    entry.leftBehind = false;
    this.link(entry, entry.candidate?.userId);
    this.dirty.add(entry);
    return entry;
  }

  /**
   * The same event as the entry holds: the same event id with a content that is the same object or
   * equally active (a server never serves two contents for one event id, except after a redaction,
   * which empties it); without an event id, the same content object.
   */
  private sameEvent(entry: Entry, eventId: string | undefined, content: unknown): boolean {
    if (entry.eventId === undefined) return eventId === undefined && content === entry.content;
    if (eventId !== entry.eventId) return false;
    return (
      content === entry.content ||
      isActiveMembershipContent(content) === isActiveMembershipContent(entry.content)
    );
  }

  private link(entry: Entry, userId: string | undefined): void {
    if (entry.linkedTo === userId) return;
    if (entry.linkedTo !== undefined) {
      const old = this.users.get(entry.linkedTo);
      const at = old ? old.entries.indexOf(entry) : -1;
      if (at >= 0) old!.entries.splice(at, 1);
      if (old && old.entries.length === 0) this.users.delete(entry.linkedTo);
    }
    entry.linkedTo = userId;
    if (userId === undefined) return;
    const user = this.users.get(userId);
    if (user) {
      user.entries.push(entry);
      return;
    }
    const created: UserRecord = {
      membership: undefined,
      present: undefined,
      since: undefined,
      memberEventId: undefined,
      memberContent: undefined,
      hasMemberEvent: false,
      lookedUpIn: -1,
      // A literal of one: its backing store holds one slot, not push's sixteen.
      entries: [entry],
    };
    this.users.set(userId, created);
    this.refreshUser(userId, created);
  }

  /**
   * Look up a sender's room membership again (or take `event`, their `m.room.member` event that just
   * became current); judge their records again if it changed.
   */
  private refreshUser(userId: string, user: UserRecord, event?: StateEventLike): void {
    user.lookedUpIn = this.applyCount;
    let memberEvent: StateEventLike | undefined;
    let membership: string | undefined;
    try {
      memberEvent = event ?? this.memberEventOf?.(userId) ?? undefined;
      membership = event || !this.membershipOf ? membershipOfEvent(memberEvent) : this.membershipOf(userId);
    } catch {
      memberEvent = undefined;
      membership = undefined;
    }
    let present: boolean;
    let since: number | undefined;
    if (memberEvent !== undefined) {
      const rawId = field(memberEvent, "event_id");
      const eventId = typeof rawId === "string" ? rawId : undefined;
      const content = field(memberEvent, "content");
      present = isJoinContent(content);
      const same =
        user.hasMemberEvent &&
        (eventId !== undefined ? eventId === user.memberEventId : content === user.memberContent) &&
        present === isJoinContent(user.memberContent);
      if (same) since = user.since;
      else {
        const ts = field(memberEvent, "origin_server_ts");
        since =
          typeof ts === "number" && Number.isFinite(ts)
            ? runSince(
                ts,
                field(memberEvent, "unsigned"),
                present,
                isJoinContent,
                user.present === undefined
                  ? undefined
                  : { eventId: user.memberEventId, active: user.present, since: user.since },
              )
            : undefined;
        user.memberEventId = eventId;
        user.memberContent = content;
        user.hasMemberEvent = true;
      }
    } else {
      // Only the membership is known: follow join/leave, without timestamps.
      present = membership === "join";
      since = user.present === present ? user.since : undefined;
      user.hasMemberEvent = false;
    }
    if (user.present && !present)
      // Seen leaving: whatever membership they hold now was left behind by this stay in the room.
      for (const entry of user.entries) entry.leftBehind = true;
    const changed = membership !== user.membership || present !== user.present || since !== user.since;
    user.membership = membership;
    user.present = present;
    user.since = since;
    if (changed) for (const entry of user.entries) this.dirty.add(entry);
  }

  private judge(entry: Entry, now: number): void {
    this.stats.judged++;
    storeCounters.judged++;
    const candidate = entry.candidate;
    if (entry.removed || !candidate) {
      entry.member = undefined;
      entry.rejection = entry.removed ? undefined : entry.staticRejection;
      return;
    }
    if (
      entry.kind === "sticky"
        ? this.slotClosed
        : this.records.sticky.size > 0 &&
          !this.slotClosed &&
          this.records.sticky.get(`${candidate.userId}\n${entry.key}`)?.removed === false
    ) {
      // A closed slot's sticky member, or a state membership the device replaced with a sticky one.
      entry.member = undefined;
      entry.rejection = undefined;
      return;
    }
    const user = this.users.get(candidate.userId);
    // The common case, without building a verdict: valid, joined, not left behind, and sorting where
    // it claims (no clamp): the candidate itself is the member.
    if (
      candidate.expiresAt > now &&
      !entry.leftBehind &&
      (!this.requireJoined ||
        (user?.membership === "join" &&
          (user.since === undefined || candidate.originServerTs >= user.since))) &&
      orderTsOf(candidate, entry.runSince, this.requireJoined ? user?.since : undefined) === candidate.orderTs
    ) {
      const old = entry.member;
      if (!(
        old &&
        old.eventId === candidate.eventId &&
        old.content === candidate.content &&
        old.orderTs === candidate.orderTs
      ))
        entry.member = candidate;
      entry.rejection = undefined;
      return;
    }
    let verdict = judgeMember(candidate, {
      now,
      requireJoined: this.requireJoined,
      membership: user?.membership,
      presenceSince: user?.present ? user.since : undefined,
      runSince: entry.runSince,
    });
    if (verdict.kind === "member" && this.requireJoined && entry.leftBehind)
      verdict = {
        kind: "rejected",
        rejection: {
          reason: "sender-left-since",
          stateKey: candidate.stateKey,
          sender: candidate.userId,
          ...(candidate.eventId === undefined ? {} : { eventId: candidate.eventId }),
          details: [`written before ${candidate.userId} left the room (seen leaving and joining again)`],
        },
      };
    if (verdict.kind === "member") {
      const m = verdict.member;
      const old = entry.member;
      // The same judgement of the same event: keep the object, so lists compare by identity.
      if (!(old && old.eventId === m.eventId && old.content === m.content && old.orderTs === m.orderTs))
        entry.member = m;
      entry.rejection = undefined;
    } else if (verdict.kind === "rejected") {
      entry.member = undefined;
      const old = entry.rejection;
      const r = verdict.rejection;
      if (!(old && old.reason === r.reason && old.eventId === r.eventId && old.stateKey === r.stateKey))
        entry.rejection = r;
    }
  }

  /** Judge every dirty record, then update the sorted list, the rejections and the expiry heap. */
  private settle(now: number): void {
    if (this.dirty.size === 0) return;
    this.stats.evaluations++;
    storeCounters.evaluations++;
    const moved: Entry[] = [];
    for (const entry of this.dirty) {
      const rejectionBefore = entry.rejection;
      this.judge(entry, now);
      if (entry.listed !== entry.member) moved.push(entry);
      if (entry.rejection !== rejectionBefore) {
        this.changedRejected = true;
        this.rejectedCache = undefined;
        if (entry.rejection) this.rejections.add(entry);
        else this.rejections.delete(entry);
      }
      // Members wait for their expiry; a sticky record that is not a member (left, rejected, hidden by a
      // closed slot) still waits for its sticky time to run out, when it stops hiding a state membership.
      const due = entry.member
        ? entry.member.expiresAt
        : entry.kind === "sticky" && !entry.removed
          ? entry.stickyUntil
          : undefined;
      if (due !== undefined && entry.heapAt !== due) {
        entry.heapAt = due;
        this.heap.push(due, entry);
      } else if (due === undefined) entry.heapAt = undefined;
      if (entry.removed) {
        this.records[entry.kind].delete(entry.key);
        this.link(entry, undefined);
      }
    }
    this.dirty.clear();
    if (moved.length > 0) {
      this.updateList(moved);
      this.changedMembers = true;
      this.membersCache = undefined;
    }
    // Stale expiry items (refreshed or gone members) pile up between expiries: rebuild when they dominate.
    if (this.heap.size > 2 * (this.list.length + this.records.sticky.size) + 64) {
      this.heap.clear();
      for (const records of Object.values(this.records))
        for (const entry of records.values())
          if (entry.heapAt !== undefined) this.heap.push(entry.heapAt, entry);
    }
  }

  /** Move entries whose listed member changed: a few by binary search, many by one merge. */
  private updateList(moved: Entry[]): void {
    if (moved.length <= 8) {
      for (const entry of moved) {
        if (entry.listed) this.list.splice(this.indexOf(entry), 1);
        entry.listed = entry.member;
        if (entry.listed) this.list.splice(this.insertionPoint(entry), 0, entry);
      }
      return;
    }
    const kept = this.list.filter((e) => e.listed === e.member);
    for (const entry of moved) entry.listed = entry.member;
    const added = moved.filter((e) => e.listed).sort(byOrder);
    const merged: Entry[] = new Array<Entry>(kept.length + added.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < kept.length && j < added.length)
      merged[k++] = byOrder(kept[i], added[j]) <= 0 ? kept[i++] : added[j++];
    while (i < kept.length) merged[k++] = kept[i++];
    while (j < added.length) merged[k++] = added[j++];
    this.list = merged;
  }

  /** Where `entry` (by its `listed` member) sits or would sit. */
  private insertionPoint(entry: Entry): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byOrder(this.list[mid], entry) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private indexOf(entry: Entry): number {
    const i = this.insertionPoint(entry);
    if (this.list[i] === entry) return i;
    // Cannot happen while the list is sorted; stay correct if it ever is not.
    return this.list.indexOf(entry);
  }
}

/** The members of one slot, oldest first, what was rejected, and when the answer changes by itself. */
export interface CallMembersEvaluation {
  /** Sorted by `orderTs` ascending (stable: ties keep the input order, as js-sdk's sort does). */
  members: CallMember[];
  /** The membership-looking events that do not count, and why. */
  rejected: RejectedMembership[];
  /** The soonest `expiresAt` among the members: evaluate again then. */
  nextExpiryAt?: number;
}

/**
 * Evaluate a room's current call membership state events (any order, other event types are skipped).
 * When several events share a state key, the last one wins (pass events in the order they applied).
 * The sender check runs when `membershipOf` or `memberEventOf` is given.
 */
export function evaluateCallMembers(events: Iterable<unknown>, options: ParseOptions): CallMembersEvaluation {
  const store = new CallMemberStore({
    slot: options.slot,
    requireJoinedSender: options.membershipOf !== undefined || options.memberEventOf !== undefined,
  });
  store.applyFull(
    {
      synced: true,
      callMemberEvents: events,
      membershipOf: options.membershipOf,
      memberEventOf: options.memberEventOf,
    },
    options.now,
  );
  const members = store.members();
  const rejected = store.rejected();
  const nextExpiryAt = store.nextExpiryAt();
  return nextExpiryAt === undefined ? { members, rejected } : { members, rejected, nextExpiryAt };
}
