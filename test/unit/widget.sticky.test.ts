/**
 * WidgetBackend in the sticky format (issue 21 item 1, widget mode through matrix-widget-api): the
 * capabilities a widget asks for, the `send_event` with `sticky_duration_ms` (and `delay` for the delayed
 * leave), and a host that refused MSC4407: nothing asked of it, `sticky-events-unsupported` (a host that
 * does not know the field would send a plain event).
 */
import { describe, expect, it } from "@jest/globals";
import log from "loglevel";
import {
  classifyError,
  MembershipManager,
  WidgetBackend,
  widgetCapabilities,
  type WidgetApiLike,
} from "../../src/index.js";
import { RTC_MEMBER_EVENT_TYPE } from "../../src/membership/rtcMember.js";
import { VirtualTime } from "../helpers/virtualTime.js";

const quiet = log.getLogger("test-quiet-widget-sticky");
quiet.setLevel("silent");

const ALICE = { userId: "@alice:example.org", deviceId: "DEV1" };
const SEND = `org.matrix.msc2762.send.event:${RTC_MEMBER_EVENT_TYPE}`;
const STICKY = "org.matrix.msc4407.send.sticky_event";
const SEND_DELAYED = "org.matrix.msc4157.send.delayed_event";
const UPDATE_DELAYED = "org.matrix.msc4157.update_delayed_event";

/** A WidgetApi double recording every send_event; `granted`: the capabilities the host approved. */
function host(granted: string[]) {
  const sent: unknown[][] = [];
  let ids = 0;
  const api: WidgetApiLike = {
    hasCapability: (c) => granted.includes(c),
    sendStateEvent: async (...args) => {
      sent.push(["state", ...args]);
      return { event_id: "$state" };
    },
    sendRoomEvent: async (...args) => {
      sent.push(["room", ...args]);
      return args[3] !== undefined ? { delay_id: `syd_${++ids}` } : { event_id: `$ev${++ids}` };
    },
    restartScheduledDelayedEvent: async () => ({}),
    sendScheduledDelayedEvent: async () => ({}),
    cancelScheduledDelayedEvent: async () => ({}),
  };
  return { api, sent };
}

const req = (memberId: string) => ({
  roomId: "!r:example.org",
  eventType: RTC_MEMBER_EVENT_TYPE,
  stickyKey: memberId,
  content: { slot_id: "m.call#ROOM", msc4354_sticky_key: memberId },
  durationMs: 3_600_000,
});

describe("widgetCapabilities in the sticky format", () => {
  it("asks to send m.rtc.member events sticky, the MSC4157 pair, and to receive them with their sticky field", () => {
    expect(widgetCapabilities({ ...ALICE, membershipFormat: "sticky" })).toEqual([
      SEND,
      STICKY,
      SEND_DELAYED,
      UPDATE_DELAYED,
      `org.matrix.msc2762.receive.event:${RTC_MEMBER_EVENT_TYPE}`,
      "org.matrix.msc4407.receive.sticky_event",
      "org.matrix.msc2762.receive.state_event:m.room.member",
    ]);
    expect(widgetCapabilities({ ...ALICE, membershipFormat: "sticky", readState: false })).toEqual([
      SEND,
      STICKY,
      SEND_DELAYED,
      UPDATE_DELAYED,
    ]);
  });
});

describe("WidgetBackend sticky sends", () => {
  it("send_event with sticky_duration_ms, and with delay for the delayed leave", async () => {
    const { api, sent } = host([SEND, STICKY, SEND_DELAYED, UPDATE_DELAYED]);
    const b = new WidgetBackend(api);
    await expect(b.sendDelayedStickyEvent({ ...req("m1"), delayMs: 8000 })).resolves.toBe("syd_1");
    await expect(b.sendStickyEvent(req("m1"))).resolves.toBe("$ev2");
    expect(sent).toEqual([
      ["room", RTC_MEMBER_EVENT_TYPE, req("m1").content, undefined, 8000, 3_600_000],
      ["room", RTC_MEMBER_EVENT_TYPE, req("m1").content, undefined, undefined, 3_600_000],
    ]);
  });

  it("a host that refused MSC4407 (or the event type) is asked nothing: sticky-unsupported", async () => {
    for (const granted of [
      [SEND, SEND_DELAYED, UPDATE_DELAYED],
      [STICKY, SEND_DELAYED, UPDATE_DELAYED],
    ]) {
      const { api, sent } = host(granted);
      const b = new WidgetBackend(api);
      const error = await b.sendStickyEvent(req("m1")).catch((e: unknown) => e);
      expect(classifyError(error, "send-state").kind).toBe("sticky-unsupported");
      await expect(b.sendDelayedStickyEvent({ ...req("m1"), delayMs: 8000 })).rejects.toThrow(/msc4407/);
      expect(sent).toEqual([]);
    }
  });

  it("a delayed send answered without a delay_id (the host ignored the delay) is refused", async () => {
    const { api } = host([SEND, STICKY, SEND_DELAYED, UPDATE_DELAYED]);
    api.sendRoomEvent = async () => ({ event_id: "$now" });
    await expect(
      new WidgetBackend(api).sendDelayedStickyEvent({ ...req("m1"), delayMs: 8000 }),
    ).rejects.toThrow(/delay_id/);
  });
});

describe("the manager over WidgetBackend in the sticky format", () => {
  async function run(granted: string[]) {
    const time = new VirtualTime();
    const { api, sent } = host(granted);
    const manager = new MembershipManager({
      backend: new WidgetBackend(api),
      roomId: "!r:example.org",
      ...ALICE,
      scheduler: time.scheduler,
      logger: quiet,
      random: () => 0.5,
      delayedLeaveDelayMs: 2000,
      membershipFormat: "sticky",
    });
    manager.join();
    await time.advance(5000);
    const state = manager.state;
    manager.dispose();
    return { state, sent };
  }

  it("joins through the host: the delayed sticky leave first, then the membership keyed by the member id", async () => {
    const { state, sent } = await run([SEND, STICKY, SEND_DELAYED, UPDATE_DELAYED]);
    expect(state).toMatchObject({ kind: "joined", delayedLeave: true });
    const [first, second] = sent as [string, string, Record<string, unknown>, unknown, unknown, number][];
    expect(first[4]).toBe(2000);
    expect(Object.keys(first[2]).sort()).toEqual(["msc4354_sticky_key", "slot_id"]);
    expect(second[4]).toBeUndefined();
    expect(second[2]).toMatchObject({ member: { id: first[2].msc4354_sticky_key } });
    expect(sent.every((s) => s[0] === "room")).toBe(true);
  });

  it("a host without MSC4407: failed with sticky-events-unsupported, nothing sent", async () => {
    const { state, sent } = await run([SEND, SEND_DELAYED, UPDATE_DELAYED]);
    expect(state).toMatchObject({ kind: "failed", error: { code: "sticky-events-unsupported" } });
    expect(sent).toEqual([]);
  });
});
