/**
 * Widget mode reads sticky memberships (issue 21 item 1) over the real matrix-widget-api 1.19 on both ends
 * (the in-process bus), with a stand-in host driver: what reaches our `WidgetStateSource` is what
 * `ClientWidgetApi` itself sends. At negotiation it pushes the room's state (`update_state`, from
 * `readRoomState`) and, when it granted `org.matrix.msc4407.receive.sticky_event`, the room's current
 * sticky events (`send_event` each, from the driver's `readStickyEvents`); then every event the host feeds
 * it (`feedEvent`), as Element Web does for its timeline and our driver's sticky feed does. A host that
 * refuses the sticky capability pushes none. No homeserver here (that is
 * test/integration/interop/widget-observer-sticky.test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import { MatrixCapabilities, WidgetDriver, type Capability, type IRoomEvent } from "matrix-widget-api";
import {
  callMembers$,
  widgetObserverCapabilities,
  WidgetStateSource,
  type CallMember,
} from "../../../src/index.js";
import { connectWidget, quietWidgetLogs, waitFor, type WidgetPair } from "../../../src/testing/index.js";

const ROOM = "!bus:hs";
const HOUR = 3_600_000;

let restoreConsole: () => void;
beforeAll(() => {
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

let seq = 0;
const now = () => Date.now();

function joinEvent(user: string): IRoomEvent {
  return {
    type: "m.room.member",
    state_key: user,
    sender: user,
    content: { membership: "join" },
    origin_server_ts: now() - 60_000,
    event_id: `$join${++seq}`,
    room_id: ROOM,
    unsigned: {},
  };
}

function stateCall(user: string, device: string): IRoomEvent {
  return {
    type: "org.matrix.msc3401.call.member",
    state_key: `_${user}_${device}_m.call`,
    sender: user,
    content: {
      application: "m.call",
      call_id: "",
      scope: "m.room",
      device_id: device,
      focus_active: { type: "livekit", focus_selection: "oldest_membership" },
      foci_preferred: [{ type: "livekit", livekit_service_url: "https://lk.example" }],
    },
    origin_server_ts: now() - 30_000,
    event_id: `$call${++seq}`,
    room_id: ROOM,
    unsigned: {},
  };
}

/** A sticky membership as a host hands it over (js-sdk 43's content, Synapse 1.163's names). */
function sticky(user: string, device: string, key: string, ttl = HOUR, leave = false): IRoomEvent {
  const content = leave
    ? { slot_id: "m.call#ROOM", msc4354_sticky_key: key }
    : {
        slot_id: "m.call#ROOM",
        application: { type: "m.call" },
        transports: { published: [{ type: "livekit", livekit_service_url: "https://lk.example" }] },
        member: { user_id: user, device_id: device, id: key },
        versions: [],
        msc4354_sticky_key: key,
      };
  return {
    type: "org.matrix.msc4143.rtc.member",
    sender: user,
    content,
    origin_server_ts: now(),
    event_id: `$sticky${++seq}`,
    room_id: ROOM,
    unsigned: { msc4354_sticky_duration_ttl_ms: ttl },
    msc4354_sticky: { duration_ms: HOUR },
  } as unknown as IRoomEvent;
}

/** The host's driver: its room's state and sticky events, and a capability policy. */
class StandInDriver extends WidgetDriver {
  stickyReads = 0;
  constructor(
    private readonly state: IRoomEvent[],
    private readonly stickyEvents: IRoomEvent[],
    private readonly refuse: Capability[] = [],
  ) {
    super();
  }
  override async validateCapabilities(requested: Set<Capability>): Promise<Set<Capability>> {
    return new Set([...requested].filter((c) => !this.refuse.includes(c)));
  }
  override async readRoomState(roomId: string, eventType: string, stateKey: string | undefined) {
    return this.state.filter(
      (e) =>
        e.room_id === roomId && e.type === eventType && (stateKey === undefined || e.state_key === stateKey),
    );
  }
  override async readStickyEvents(roomId: string): Promise<IRoomEvent[]> {
    this.stickyReads++;
    return this.stickyEvents.filter((e) => e.room_id === roomId);
  }
  override getKnownRooms(): string[] {
    return [ROOM];
  }
}

async function observe(driver: StandInDriver) {
  let source!: WidgetStateSource;
  const pair: WidgetPair = await connectWidget({
    driver,
    plainClientApi: true,
    capabilities: widgetObserverCapabilities(ROOM),
    beforeStart: (widgetApi) => (source = new WidgetStateSource(widgetApi, ROOM)),
  });
  const lists: CallMember[][] = [];
  const sub = callMembers$(source).subscribe((m) => lists.push(m));
  cleanups.push(
    () => pair.close(),
    () => source.close(),
    () => sub.unsubscribe(),
  );
  const ids = () => (lists.at(-1) ?? []).map((m) => `${m.userId}|${m.deviceId}`);
  return { pair, source, lists, ids };
}

describe("widget bus: our observer on matrix-widget-api's sticky pushes", () => {
  it("lists the sticky members pushed at negotiation beside the pushed state, then follows the host's feed", async () => {
    const state = [joinEvent("@a:hs"), joinEvent("@b:hs"), joinEvent("@c:hs"), stateCall("@a:hs", "A")];
    const driver = new StandInDriver(state, [sticky("@b:hs", "B", "kb")]);
    const { pair, lists, ids } = await observe(driver);
    await waitFor(() => ids().length === 2, 3000, "the negotiation pushes to list a and b");
    expect(ids()).toEqual(["@a:hs|A", "@b:hs|B"]);
    expect(driver.stickyReads).toBe(1);
    expect(lists.length).toBeLessThanOrEqual(2);
    expect(lists.at(-1)![1]).toMatchObject({ stickyKey: "kb", memberId: "kb" });

    // A new sticky member, as the host feeds it (Element Web: its timeline; ours: the sticky map).
    const joined = sticky("@c:hs", "C", "kc");
    await pair.clientApi.feedEvent(joined);
    await waitFor(() => ids().length === 3, 3000, "c listed");
    const before = lists.length;
    // The same event again (timeline and sticky feed both hand it over): nothing new.
    await pair.clientApi.feedEvent({ ...joined, unsigned: { msc4354_sticky_duration_ttl_ms: HOUR - 1000 } });
    // c leaves (js-sdk 43's leave at its key): dropped at once.
    await pair.clientApi.feedEvent(sticky("@c:hs", "C", "kc", HOUR, true));
    await waitFor(() => ids().length === 2, 3000, "c dropped");
    expect(lists.length).toBe(before + 1);
    expect(ids()).toEqual(["@a:hs|A", "@b:hs|B"]);

    // A sticky member whose stickiness runs out (TTL 400 ms): dropped when it does, with no push.
    const shortAt = Date.now();
    await pair.clientApi.feedEvent(sticky("@c:hs", "C2", "kc2", 400));
    await waitFor(() => ids().includes("@c:hs|C2"), 3000, "c2 listed");
    await waitFor(() => !ids().includes("@c:hs|C2"), 3000, "c2 to expire");
    expect(Date.now() - shortAt).toBeGreaterThanOrEqual(400);
  });

  it("a host that refuses receive.sticky_event pushes none at negotiation: only state members", async () => {
    const state = [joinEvent("@a:hs"), joinEvent("@b:hs"), stateCall("@a:hs", "A")];
    const driver = new StandInDriver(
      state,
      [sticky("@b:hs", "B", "kb")],
      [MatrixCapabilities.MSC4407ReceiveStickyEvent],
    );
    const { pair, ids } = await observe(driver);
    await waitFor(() => ids().length === 1, 3000, "the state push");
    expect(pair.widgetApi.hasCapability(MatrixCapabilities.MSC4407ReceiveStickyEvent)).toBe(false);
    await new Promise((r) => setTimeout(r, 100));
    expect(driver.stickyReads).toBe(0);
    expect(ids()).toEqual(["@a:hs|A"]);
  });
});
