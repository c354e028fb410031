/**
 * Label layout for the timeline picture: every label and marker is a box, and a label goes to the first
 * of its candidate places where it overlaps no box already taken (or is left out). Where many things
 * happen at once (a cut, a fired leave, a 404, a rejoin within a second) the labels spread out instead of
 * piling up. The same box arithmetic lets a test check a rendered picture: no two labels overlap.
 */

/** A rectangle in picture coordinates. */
export interface Box {
  /** Left. */
  x0: number;
  /** Top. */
  y0: number;
  /** Right. */
  x1: number;
  /** Bottom. */
  y1: number;
}

/** How a label's text is anchored at its x (SVG `text-anchor`). */
export type Anchor = "start" | "middle" | "end";

/**
 * Width of `text` at `size` px in the picture's sans-serif font, rounded up: 0.6 em per character
 * (0.64 in bold) is wider than the average glyph of system-ui, Helvetica or Arial, so estimated boxes
 * hold the drawn text.
 */
export function textWidth(text: string, size: number, bold = false): number {
  return text.length * size * (bold ? 0.64 : 0.6);
}

/** The box of a text drawn with its baseline at `y`: ascenders above, descenders below. */
export function textBox(x: number, y: number, text: string, size: number, anchor: Anchor, bold = false): Box {
  const w = textWidth(text, size, bold);
  const x0 = anchor === "start" ? x : anchor === "middle" ? x - w / 2 : x - w;
  return { x0, y0: y - size * 0.9, x1: x0 + w, y1: y + size * 0.3 };
}

/** True when the two boxes share more than `gap` of area on both axes (touching is fine). */
export function overlaps(a: Box, b: Box, gap = 0): boolean {
  return a.x0 < b.x1 - gap && b.x0 < a.x1 - gap && a.y0 < b.y1 - gap && b.y0 < a.y1 - gap;
}

/** Every pair of boxes that overlap: what a layout test asserts is empty. */
export function overlappingPairs<T extends Box>(boxes: readonly T[], gap = 0): [T, T][] {
  const pairs: [T, T][] = [];
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++)
      if (overlaps(boxes[i], boxes[j], gap)) pairs.push([boxes[i], boxes[j]]);
  return pairs;
}

/** A place to try for a label: where its text goes. */
export interface Candidate {
  /** The text's x (its anchor point). */
  x: number;
  /** Its baseline. */
  y: number;
  /** How the text hangs off x. */
  anchor: Anchor;
}

/** Boxes taken so far (labels and markers); labels are placed so that none overlaps another. */
export class Placer {
  private readonly taken: Box[] = [];

  /** @param bounds labels stay inside (the picture). */
  constructor(private readonly bounds: Box) {}

  /** Marks an area no label may cover (a marker, a fixed label). */
  reserve(box: Box): void {
    this.taken.push(box);
  }

  /** Is this box free (and inside the bounds)? */
  fits(box: Box): boolean {
    const b = this.bounds;
    if (box.x0 < b.x0 || box.x1 > b.x1 || box.y0 < b.y0 || box.y1 > b.y1) return false;
    return this.taken.every((t) => !overlaps(t, box));
  }

  /**
   * The first candidate where `text` fits; its box is taken. Undefined when none fits: the label is left
   * out rather than drawn over another.
   */
  place(
    text: string,
    size: number,
    candidates: Candidate[],
    bold = false,
    within?: Box,
  ): Candidate | undefined {
    for (const c of candidates) {
      // A hair of padding so neighbours do not touch.
      const box = pad(textBox(c.x, c.y, text, size, c.anchor, bold), 1);
      const inside =
        !within || (box.x0 >= within.x0 && box.x1 <= within.x1 && box.y0 >= within.y0 && box.y1 <= within.y1);
      if (inside && this.fits(box)) {
        this.taken.push(box);
        return c;
      }
    }
    return undefined;
  }
}

function pad(box: Box, by: number): Box {
  return { x0: box.x0 - by, y0: box.y0 - by, x1: box.x1 + by, y1: box.y1 + by };
}

/**
 * Candidates for a label near a point: on each row (offsets from `y`), right of the point then left
 * (or left first, `prefer: "left"`), each shift a step further out.
 */
export function around(
  x: number,
  y: number,
  opts: { gap?: number; rows?: number[]; shifts?: number[]; prefer?: "left" | "right" } = {},
): Candidate[] {
  const gap = opts.gap ?? 6;
  const out: Candidate[] = [];
  for (const dy of opts.rows ?? [0]) {
    for (const dx of opts.shifts ?? [0]) {
      const right: Candidate = { x: x + gap + dx, y: y + dy, anchor: "start" };
      const left: Candidate = { x: x - gap - dx, y: y + dy, anchor: "end" };
      out.push(...(opts.prefer === "left" ? [left, right] : [right, left]));
    }
  }
  return out;
}
