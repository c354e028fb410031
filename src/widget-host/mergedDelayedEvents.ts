/**
 * The widget host's way to MSC4140 as merged: when the client's server offers the merged shape, a
 * widget's `send_event` with `delay` and its `update_delayed_event` actions go to the merged endpoints
 * (through matrix-js-sdk's HTTP API, like ClientBackend); otherwise the driver keeps using js-sdk's
 * unstable methods. Decided once per client.
 */
import { DelayedEventsHttp, speaksHttp } from "../backends/mergedDelayedEvents.js";
import type { DelayedEventAction } from "../backends/types.js";

const perClient = new WeakMap<object, DelayedEventsHttp>();

/** The merged-shape requests for this client's server, or undefined (unstable server, or a client double). */
async function mergedFor(client: object): Promise<DelayedEventsHttp | undefined> {
  if (!speaksHttp(client)) return undefined;
  let http = perClient.get(client);
  if (!http) {
    http = new DelayedEventsHttp(client);
    perClient.set(client, http);
  }
  return (await http.useMerged()) ? http : undefined;
}

/** Schedules through the merged endpoint and resolves to the delay id, or undefined when not merged. */
export async function scheduleIfMerged(
  client: object,
  req: {
    roomId: string;
    eventType: string;
    stateKey?: string;
    content: Record<string, unknown>;
    delayMs: number;
  },
): Promise<string | undefined> {
  const http = await mergedFor(client);
  return http ? http.schedule(req) : undefined;
}

/** Runs the action through the merged endpoint; false when the server is not merged (caller goes on). */
export async function updateIfMerged(
  client: object,
  delayId: string,
  action: DelayedEventAction,
  signal?: AbortSignal,
): Promise<boolean> {
  const http = await mergedFor(client);
  if (!http) return false;
  await http.update(delayId, action, signal);
  return true;
}
