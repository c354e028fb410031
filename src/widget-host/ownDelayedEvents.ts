/**
 * The delayed events one widget scheduled through its driver: the only ids that widget may restart,
 * send or cancel (delay ids are bearer capabilities on Synapse's management endpoints: without this, any
 * widget, of this user or another, could fire or drop another widget's delayed leave), and the delayed
 * leaves the host sends when the widget goes away. Times are a monotonic clock's milliseconds, passed in.
 */

/** One delayed event a widget scheduled. */
export interface OwnDelayedEvent {
  /** The server's id. */
  delayId: string;
  /** The delay it was scheduled (and is restarted) with. */
  delayMs: number;
  /**
   * A delayed leave: `{}` at a MatrixRTC membership state key (how a membership ends). The host sends
   * these when the widget goes away; other delayed events it leaves to fire at their time.
   */
  leave: boolean;
  /** When it falls due as far as the host knows (scheduled or last restarted + delay). */
  dueAt: number;
}

/** How long after its due time an id is kept: the server may fire a little late, a restart be on its way. */
const KEEP_AFTER_DUE_MS = 60_000;
/** More than this many live delayed events from one widget is not a call: the soonest due is dropped. */
const MAX_TRACKED = 256;

/** The ids one widget may manage. */
export class OwnDelayedEvents {
  private readonly byId = new Map<string, OwnDelayedEvent>();

  /** A delayed event the widget just scheduled. */
  add(event: Omit<OwnDelayedEvent, "dueAt">, now: number): void {
    this.prune(now);
    this.byId.delete(event.delayId);
    if (this.byId.size >= MAX_TRACKED) {
      const soonest = [...this.byId.values()].reduce((a, b) => (b.dueAt < a.dueAt ? b : a));
      this.byId.delete(soonest.delayId);
    }
    this.byId.set(event.delayId, { ...event, dueAt: now + event.delayMs });
  }

  /** Whether the widget scheduled `delayId` (and it may still be pending). */
  has(delayId: string, now: number): boolean {
    this.prune(now);
    return this.byId.has(delayId);
  }

  /** A restart went through: due one delay from now. */
  restarted(delayId: string, now: number): void {
    const event = this.byId.get(delayId);
    if (event) event.dueAt = now + event.delayMs;
  }

  /** Sent, cancelled, or reported gone by the server: no longer the widget's to manage. */
  forget(delayId: string): void {
    this.byId.delete(delayId);
  }

  /** The delayed leaves that may still be pending, soonest due first. */
  pendingLeaves(now: number): OwnDelayedEvent[] {
    this.prune(now);
    return [...this.byId.values()].filter((e) => e.leave).sort((a, b) => a.dueAt - b.dueAt);
  }

  /** How many ids are tracked (for tests). */
  get size(): number {
    return this.byId.size;
  }

  private prune(now: number): void {
    for (const [id, event] of this.byId) if (event.dueAt + KEEP_AFTER_DUE_MS < now) this.byId.delete(id);
  }
}
