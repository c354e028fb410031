// The timeline picture of a call: what a recorder keeps of a run, and the SVG drawn from it.
export { CallRecorder } from "./recorder.js";
export type { CallRecorderOptions, RecordableServer } from "./recorder.js";
export { renderTimeline, labelBoxes } from "./render.js";
export type { LabelBox, TimelineOptions } from "./render.js";
export { overlappingPairs, textBox, textWidth } from "./layout.js";
export type { Box, Anchor } from "./layout.js";
export type {
  CallTrace,
  Deadline,
  DeviceInfo,
  DeviceRequest,
  MembershipChange,
  Milestone,
  Outage,
  ProbablyLeftMark,
  RequestOp,
  ServerRequest,
  StatusChange,
  SyncChange,
  ViewChange,
} from "./types.js";
