/**
 * The part of matrix-js-sdk's `MatrixClient` that sends to-device messages; a `MatrixClient` fits it.
 * Typed here so that this entry's declarations do not pull in matrix-js-sdk's.
 */
export interface ToDeviceClient {
  /** Sends one to-device event type to the listed devices. */
  sendToDevice(
    eventType: string,
    contentMap: Map<string, Map<string, Record<string, unknown>>>,
  ): Promise<unknown>;
  /** The client's crypto, when it has one (encrypted to-device messages need it). */
  getCrypto():
    | {
        /** Encrypts one payload for each listed device. */
        encryptToDeviceMessages(
          eventType: string,
          devices: { userId: string; deviceId: string }[],
          payload: never,
        ): Promise<{
          /** The encrypted event type. */
          eventType: string;
          /** One encrypted payload per device. */
          batch: {
            /** The recipient's user id. */
            userId: string;
            /** The recipient device. */
            deviceId: string;
            /** The encrypted content for that device. */
            payload: unknown;
          }[];
        }>;
      }
    | undefined;
}
type ContentMap = { [userId: string]: { [deviceId: string]: object } };

/**
 * Sends a widget's to-device messages with `client`, in one request per event type (one request for a
 * widget's request, as far as the host's sends go). Unencrypted ones go as they are. Encrypted ones need
 * the client's crypto (one encryption per distinct payload, as the widget API gives one payload per
 * device; every device's ciphertext then goes out together); without crypto they fail instead of leaking
 * in clear.
 */
export async function sendToDeviceWith(
  client: ToDeviceClient,
  eventType: string,
  encrypted: boolean,
  contentMap: ContentMap,
): Promise<void> {
  if (!encrypted) {
    const map = new Map<string, Map<string, Record<string, unknown>>>();
    for (const [userId, devices] of Object.entries(contentMap))
      map.set(userId, new Map(Object.entries(devices) as [string, Record<string, unknown>][]));
    await client.sendToDevice(eventType, map);
    return;
  }
  const crypto = client.getCrypto();
  if (!crypto) throw new Error("Cannot send encrypted to-device messages: the host client has no crypto");
  const byPayload = new Map<string, { payload: object; devices: { userId: string; deviceId: string }[] }>();
  for (const [userId, devices] of Object.entries(contentMap))
    for (const [deviceId, payload] of Object.entries(devices)) {
      const key = JSON.stringify(payload);
      const group = byPayload.get(key) ?? { payload, devices: [] };
      group.devices.push({ userId, deviceId });
      byPayload.set(key, group);
    }
  // Encrypted event type (m.room.encrypted) → user → device → ciphertext.
  const outgoing = new Map<string, Map<string, Map<string, Record<string, unknown>>>>();
  for (const { payload, devices } of byPayload.values()) {
    const batch = await crypto.encryptToDeviceMessages(eventType, devices, payload as never);
    const map = outgoing.get(batch.eventType) ?? new Map<string, Map<string, Record<string, unknown>>>();
    outgoing.set(batch.eventType, map);
    for (const { userId, deviceId, payload: encryptedPayload } of batch.batch) {
      const devicesOfUser = map.get(userId) ?? new Map<string, Record<string, unknown>>();
      devicesOfUser.set(deviceId, encryptedPayload as Record<string, unknown>);
      map.set(userId, devicesOfUser);
    }
  }
  for (const [type, map] of outgoing) await client.sendToDevice(type, map);
}
