/**
 * guardClientWidgetApi on its own: which origins it accepts, that it is idempotent and fails closed,
 * that it logs a drop at debug without the message's content, and that it stops with the api.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import log from "loglevel";
import { ClientWidgetApi, Widget, WidgetDriver } from "matrix-widget-api";
import {
  acceptRefreshAction,
  attachCallWidgetActions,
  createClientWidgetApi,
  DelayedEventWidgetDriver,
  guardClientWidgetApi,
  widgetOrigin,
  WidgetHostSetupError,
  type DriverClient,
} from "../../src/widget-host/index.js";
import { installWindowShim, quietWidgetLogs } from "../helpers/widgetBus.js";

let restoreConsole: () => void;
beforeAll(() => {
  installWindowShim();
  restoreConsole = quietWidgetLogs();
});
afterAll(() => restoreConsole());

const widgetAt = (url: string) =>
  new Widget({ id: "w1", creatorUserId: "@a:x", type: "m.custom", url, waitForIframeLoad: true });

function fakeIframe(): HTMLIFrameElement {
  const window = { postMessage: () => undefined };
  return { contentWindow: window, addEventListener: () => undefined } as never;
}

/** The listeners registered on globalThis (the shim's bus), counted through add/remove. */
function countListeners(): { count: () => number; live: Set<unknown>; restore: () => void } {
  const g = globalThis as unknown as Record<string, (...a: unknown[]) => void>;
  const add = g.addEventListener;
  const remove = g.removeEventListener;
  const live = new Set<unknown>();
  g.addEventListener = (type, fn, ...rest) => (type === "message" && live.add(fn), add(type, fn, ...rest));
  g.removeEventListener = (type, fn, ...rest) => (live.delete(fn), remove(type, fn, ...rest));
  return {
    count: () => live.size,
    live,
    restore: () => Object.assign(g, { addEventListener: add, removeEventListener: remove }),
  };
}

describe("widgetOrigin", () => {
  it("is the widget URL's origin", () => {
    expect(widgetOrigin(widgetAt("https://call.example:8443/room?x=$matrix_user_id"))).toBe(
      "https://call.example:8443",
    );
    expect(widgetOrigin(widgetAt("http://localhost:3000/index.html#?a=b"))).toBe("http://localhost:3000");
  });

  it("refuses a URL without an origin of its own (data:, blob:, not absolute)", () => {
    for (const url of ["data:text/html,<p>hi</p>", "blob:null/1234", "about:blank"])
      expect(() => widgetOrigin(widgetAt(url))).toThrow(WidgetHostSetupError);
  });
});

describe("guardClientWidgetApi", () => {
  const driver = new DelayedEventWidgetDriver({} as DriverClient, { roomId: "!r:x" });

  it("replaces the transport's listener with one guard, pins targetOrigin, and stops with the api", () => {
    const listeners = countListeners();
    try {
      const api = new ClientWidgetApi(
        widgetAt("https://w.example/w"),
        fakeIframe(),
        new (class extends WidgetDriver {})(),
      );
      expect(listeners.count()).toBe(1);
      api.transport.targetOrigin = "*";
      guardClientWidgetApi(api);
      guardClientWidgetApi(api); // idempotent
      expect(listeners.count()).toBe(1);
      expect(api.transport.targetOrigin).toBe("https://w.example");
      api.stop();
      expect(listeners.count()).toBe(0);
    } finally {
      listeners.restore();
    }
  });

  it("every entry point that wraps a ClientWidgetApi guards it", () => {
    for (const wrap of [
      (api: ClientWidgetApi) => acceptRefreshAction(api, driver),
      (api: ClientWidgetApi) => attachCallWidgetActions(api, {}).dispose(),
    ]) {
      const listeners = countListeners();
      try {
        const api = new ClientWidgetApi(widgetAt("https://w.example/w"), fakeIframe(), driver);
        api.transport.targetOrigin = "*";
        wrap(api);
        expect(api.transport.targetOrigin).toBe("https://w.example");
        api.stop();
        expect(listeners.count()).toBe(0);
      } finally {
        listeners.restore();
      }
    }
  });

  it("createClientWidgetApi refuses a widget without an origin of its own, and leaves nothing listening", () => {
    const listeners = countListeners();
    try {
      expect(() => createClientWidgetApi(widgetAt("data:text/html,x"), fakeIframe(), driver)).toThrow(
        WidgetHostSetupError,
      );
      expect(listeners.count()).toBe(0);
    } finally {
      listeners.restore();
    }
  });

  it("fails closed on a transport without the internals it replaces", () => {
    const api = new ClientWidgetApi(widgetAt("https://w.example/w"), fakeIframe(), driver);
    try {
      Object.defineProperty(api.transport, "handleMessage", { value: undefined });
      expect(() => guardClientWidgetApi(api)).toThrow(WidgetHostSetupError);
    } finally {
      api.stop();
    }
  });

  it("logs a dropped message at debug, naming the sender's origin but not the content", () => {
    const lines: string[] = [];
    const logger = log.getLogger("matrixrtc-membership:widget-host");
    const factory = logger.methodFactory;
    logger.methodFactory =
      () =>
      (...args: unknown[]) =>
        lines.push(args.map(String).join(" "));
    logger.setLevel("debug");
    const listeners = countListeners();
    const api = createClientWidgetApi(widgetAt("https://w.example/w"), fakeIframe(), driver);
    try {
      const ev = new Event("message");
      Object.defineProperties(ev, {
        data: {
          value: {
            api: "fromWidget",
            widgetId: "w1",
            requestId: "r1",
            action: "send_event",
            data: { type: "t", content: { secret: "SECRET-CONTENT" } },
          },
        },
        origin: { value: "https://evil.example" },
        source: { value: {} },
      });
      for (const listener of listeners.live) (listener as (ev: Event) => void)(ev);
      expect(lines).toEqual([expect.stringContaining("https://evil.example")]);
      expect(lines.join("\n")).not.toContain("SECRET-CONTENT");
      expect(lines.join("\n")).not.toContain("send_event");
    } finally {
      api.stop();
      listeners.restore();
      logger.methodFactory = factory;
      logger.setLevel("warn");
    }
  });
});
