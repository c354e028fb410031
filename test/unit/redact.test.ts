/** Issue 11 item 7: what we log and what we put in error messages carries no token and no delay id. */
import { describe, expect, it } from "@jest/globals";
import log from "loglevel";
import { redactingLogger, redactText, redactValue } from "../../src/log/redact.js";
import { MembershipError } from "../../src/errors.js";

const TOKEN = "syt_YWxpY2U_abcdefghijklmnop_0Xyz12";
const OPAQUE = "Mk9sVEcuZ3Vlc3QtdG9rZW4tMTIz"; // a non-Synapse token format
const DELAY = "syd_wxyzABCDEFGHIJKLMNOP";

describe("redactText", () => {
  it.each<[string, string]>([
    [
      "query",
      `MatrixError: [403] Forbidden (http://127.0.0.1:1/_matrix/client/v3/rooms/!r/state/x/k?access_token=${OPAQUE})`,
    ],
    ["query among others", `GET /sync?filter=1&access_token=${OPAQUE}&since=s1`],
    ["percent-encoded", `url=%2Fsync%3Faccess_token%3D${OPAQUE}`],
    ["JSON", `{"access_token":"${OPAQUE}","device_id":"D"}`],
    ["refresh token", `refresh_token=${OPAQUE}`],
    ["Authorization header", `Authorization: Bearer ${OPAQUE}`],
    ["headers object", `{"authorization":"Bearer ${OPAQUE}"}`],
    ["bare bearer", `sent with Bearer ${OPAQUE}`],
    ["Synapse token anywhere", `token ${TOKEN} leaked`],
  ])("hides the token (%s)", (_name, text) => {
    const out = redactText(text);
    expect(out).not.toContain(OPAQUE);
    expect(out).not.toContain(TOKEN);
    expect(out).toContain("<redacted>");
  });

  it.each<[string, string]>([
    ["path", `(http://hs/_matrix/client/unstable/org.matrix.msc4140/delayed_events/${DELAY}/restart)`],
    ["legacy path", `POST /_matrix/client/unstable/org.matrix.msc4140/delayed_events/${DELAY}`],
    ["JSON", `{"delay_id":"${DELAY}"}`],
    ["widget form", `delay_id=${DELAY}`],
    ["Synapse id anywhere", `cancelling ${DELAY}`],
  ])("hides delay ids (%s), unless asked not to", (_name, text) => {
    expect(redactText(text)).not.toContain(DELAY);
    if (!text.includes("delay_id") && !text.includes("delayed_events") && !text.startsWith("cancelling"))
      return;
    expect(redactText(text, { delayIds: false })).toContain(DELAY);
  });

  it("leaves ordinary text alone", () => {
    const text = "state joining -> joined; restart failed (server); retrying in 250 ms; @alice:hs DEV_1";
    expect(redactText(text)).toBe(text);
  });

  it("redacts errors and objects passed as log arguments", () => {
    const e = new Error(`boom (http://hs/x?access_token=${OPAQUE})`);
    expect(String(redactValue(e))).not.toContain(OPAQUE);
    expect(String(redactValue({ headers: { Authorization: `Bearer ${OPAQUE}` } }))).not.toContain(OPAQUE);
    expect(redactValue(42)).toBe(42);
  });
});

describe("redactingLogger", () => {
  function capture(): { logger: log.Logger; lines: [string, string][] } {
    const lines: [string, string][] = [];
    const logger = log.getLogger(`redact-test-${Math.random()}`);
    logger.methodFactory =
      (level) =>
      (...args: unknown[]) =>
        lines.push([level, args.map(String).join(" ")]);
    logger.setLevel("trace");
    return { logger, lines };
  }

  it("redacts tokens at every level and delay ids above debug; level changes still apply", () => {
    const { logger, lines } = capture();
    const wrapped = redactingLogger(logger);
    expect(redactingLogger(wrapped)).toBe(wrapped);
    wrapped.debug(`cancelling ${DELAY} with access_token=${OPAQUE}`);
    wrapped.info(`delayed_events/${DELAY}`);
    wrapped.warn(`x?access_token=${OPAQUE}`);
    wrapped.error(new Error(`[403] (/delayed_events/${DELAY}?access_token=${OPAQUE})`));
    const all = lines.map(([, l]) => l).join("\n");
    expect(all).not.toContain(OPAQUE);
    expect(lines[0][1]).toContain(DELAY); // debug may show a delay id
    for (const [, line] of lines.slice(1)) expect(line).not.toContain(DELAY);
    expect(lines.map(([level]) => level)).toEqual(["debug", "info", "warn", "error"]);
    logger.setLevel("error");
    wrapped.warn("dropped");
    wrapped.error("kept");
    expect(lines.at(-1)?.[1]).toBe("kept");
    expect(lines).toHaveLength(5);
  });
});

it("MembershipError redacts its message and scrubs its cause", () => {
  const cause = Object.assign(new Error(`MatrixError: [403] (http://hs/state/k?access_token=${OPAQUE})`), {
    url: `http://hs/delayed_events/${DELAY}?access_token=${OPAQUE}`,
    httpStatus: 403,
  });
  const e = new MembershipError(`send-state: ${cause.message}`, "forbidden", "send-state", undefined, {
    cause,
  });
  expect(e.message).not.toContain(OPAQUE);
  expect(cause.message).not.toContain(OPAQUE);
  expect(cause.stack).not.toContain(OPAQUE);
  expect(cause.url).not.toContain(OPAQUE);
  expect(cause.url).not.toContain(DELAY);
  expect(cause.httpStatus).toBe(403);
});
