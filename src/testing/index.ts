export { startTestHomeserver } from "./homeserver/homeserver.js";
export type {
  TestHomeserver,
  CreateRoomOptions,
  StateEventRecord,
  TimelineEventRecord,
} from "./homeserver/homeserver.js";
export {
  SYNAPSE_PRESETS,
  DEFAULT_OPTIONS,
  ELEMENT_CALL_RATE_LIMITS,
  SYNAPSE_STOCK_RATE_LIMITS,
} from "./homeserver/options.js";
export type {
  TestHomeserverOptions,
  ResolvedOptions,
  SynapsePreset,
  Clock,
  RateLimitConfig,
  RateLimits,
  ErrorDialect,
  ManagementAuth,
  DelayedEventsShape,
  StickyEventsShape,
} from "./homeserver/options.js";
export { createManualClock } from "./homeserver/clock.js";
export type { ManualClock } from "./homeserver/clock.js";
export type { DelayedEventRecord } from "./homeserver/delayed-events.js";
export type { ServerFaults, FaultSpec, FaultResponse } from "./homeserver/faults.js";
export type { RequestLogEntry } from "./homeserver/http-server.js";
export type { RouteId } from "./homeserver/routes.js";
export type { AppServiceRegistration, AppServiceNamespace } from "./homeserver/appservices.js";
export type { Credentials } from "./homeserver/users.js";
export {
  startSynapse,
  DEFAULT_SYNAPSE_VERSION,
  resolveRateLimits,
  ensureSynapse,
  synapseCacheDir,
  constraintsFile,
  installSynapse,
  defaultSynapseVersions,
} from "./synapse/index.js";
export type {
  SynapseHomeserver,
  SynapseOptions,
  SynapseRateLimitPreset,
  InstalledSynapse,
  InstallSynapseOptions,
  InstalledVersion,
} from "./synapse/index.js";
export { startFaultyLink } from "./network/index.js";
export type {
  FaultyLink,
  FaultyLinkOptions,
  LinkLogEntry,
  LinkStats,
  RequestFate,
  RestoreOptions,
} from "./network/index.js";
export type { MatrixSdkLogLevel } from "../log/quietMatrixSdk.js";
export {
  startTestCall,
  quietMatrixSdkLogs,
  bareClient,
  syncedClient,
  stopClient,
  rtcMembers,
  waitFor,
} from "./scenario.js";
export type {
  TestCall,
  TestCallOptions,
  TestDevice,
  CallObserver,
  CallHomeserver,
  UserCreds,
} from "./scenario.js";
export type { JsonObject } from "./homeserver/errors.js";
export { connectWidget, installWindowShim, quietWidgetLogs } from "./widgetBus.js";
export type { ConnectOptions, MessageSender, WidgetPair } from "./widgetBus.js";
export { startTestSfuAuth } from "./sfuAuth.js";
export type { TestSfuAuth, TestSfuAuthOptions, SfuAuthRequest } from "./sfuAuth.js";
export type {
  DelegationOptions,
  DelegationOutcome,
  DelegationRecord,
  DelegationState,
  DelegationVia,
  RefusalAnswer,
  ServiceHomeserverRequest,
  SfuAppServiceOptions,
  SfuParticipant,
} from "./sfu/types.js";
export {
  CallRecorder,
  renderTimeline,
  labelBoxes,
  overlappingPairs,
  textBox,
  textWidth,
} from "./timeline/index.js";
export type {
  CallRecorderOptions,
  RecordableServer,
  TimelineOptions,
  LabelBox,
  Box,
  Anchor,
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
} from "./timeline/index.js";
