/**
 * The browser page's lifecycle, as the manager needs it: "the page is going away" (`pagehide` on the
 * window; `freeze` on the document, Chromium's Page Lifecycle API) and "the page is back" (`pageshow`
 * with `persisted`, a back/forward cache restore; `resume` on the document). The decisions are the
 * machine's (src/core/machine/pageExit.ts); this only listens.
 *
 * Found through `globalThis.window`, read when a manager is made: nothing here touches a browser (or
 * Node) global at module load, so the main entry stays loadable everywhere.
 */

/** The part of a `window` or `document` the manager listens on (any `EventTarget` fits). */
export interface PageEventTarget {
  /** Adds a listener. */
  addEventListener(type: string, listener: (event: Event) => void): void;
  /** Removes it. */
  removeEventListener(type: string, listener: (event: Event) => void): void;
}

/** Where the page's lifecycle events come from: the browser's `window` and `document`, or test doubles. */
export interface PageLifecycle {
  /** Fires `pagehide` and `pageshow`. */
  window: PageEventTarget;
  /** Fires `freeze` and `resume` (Chromium); optional. */
  document?: PageEventTarget;
}

function isTarget(value: unknown): value is PageEventTarget {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Partial<PageEventTarget>).addEventListener === "function" &&
    typeof (value as Partial<PageEventTarget>).removeEventListener === "function"
  );
}

/**
 * The page this code runs in: a `window` with `addEventListener` (a browser page or a widget's iframe),
 * or undefined (Node, a worker).
 */
export function currentPage(): PageLifecycle | undefined {
  const g = globalThis as { window?: unknown; document?: unknown };
  if (!isTarget(g.window)) return undefined;
  return isTarget(g.document) ? { window: g.window, document: g.document } : { window: g.window };
}

/** Which page the `leaveOnPageHide` option means: the option's own, the current page by default, or none. */
export function pageFor(option: boolean | PageLifecycle | undefined): PageLifecycle | undefined {
  if (option === false) return undefined;
  if (typeof option === "object" && option !== null) return option;
  return currentPage();
}

/** Listen to the page's going away and coming back; the returned function stops listening. */
export function watchPage(page: PageLifecycle, on: { hide(): void; show(): void }): () => void {
  const hide = () => on.hide();
  // A plain `pageshow` is the first load: only a restore from the back/forward cache says `persisted`.
  const show = (event: Event) => {
    if (event.type === "resume" || (event as Event & { persisted?: boolean }).persisted === true) on.show();
  };
  const listeners: [PageEventTarget | undefined, string, (event: Event) => void][] = [
    [page.window, "pagehide", hide],
    [page.window, "pageshow", show],
    [page.document, "freeze", hide],
    [page.document, "resume", show],
  ];
  for (const [target, type, listener] of listeners) target?.addEventListener(type, listener);
  return () => {
    for (const [target, type, listener] of listeners) target?.removeEventListener(type, listener);
  };
}
