export { MembershipManager } from "./manager/MembershipManager.js";
export type { MembershipManagerOptions, MembershipUpdate } from "./manager/MembershipManager.js";
export type { RequestTraceSink } from "./manager/requestTrace.js";
export type {
  MembershipState,
  Status,
  LeaveResult,
  Support,
  ReconnectReason,
  LeftReason,
} from "./manager/state.js";
export { statusOf } from "./manager/state.js";
export { whenConnected } from "./manager/whenConnected.js";
export type { ConnectableManager, WhenConnectedOptions } from "./manager/whenConnected.js";
export { leaveOnExit } from "./manager/leaveOnExit.js";
export type { ExitingManager, ExitProcess, LeaveOnExitOptions } from "./manager/leaveOnExit.js";
export type { PageEventTarget, PageLifecycle } from "./manager/pageLifecycle.js";
export { ClientBackend } from "./backends/client.js";
export type { ClientLike, ClientRequestOptions, ClientBackendOptions } from "./backends/client.js";
export { parseDelayedEventLookup } from "./backends/mergedDelayedEvents.js";
export type { AuthedRequestOptions, DelayedEventsApiChoice } from "./backends/mergedDelayedEvents.js";
export type {
  MembershipBackend,
  DelayedEventAction,
  RequestOptions,
  StateEventRequest,
  SupportHint,
  PendingDelayedEvent,
  DelayedEventStatus,
  DelegateDelayedLeaveRequest,
} from "./backends/types.js";
export {
  classifyError,
  httpFacts,
  isTransient,
  LocalTimeoutError,
  MalformedResponseError,
  MembershipConfigError,
  MembershipError,
} from "./errors.js";
export type { ErrorClass, HttpFacts, MembershipErrorCode, Operation } from "./errors.js";
export { resolveTiming, refreshIntervalMs, backoffMs, MIN_DELAY_MS } from "./core/config.js";
export { retryWaitMs, MAX_TIMER_MS } from "./core/policy.js";
export type { WaitInput } from "./core/policy.js";
export { validateIdentity, leaveTimeoutMs } from "./core/validate.js";
export type { IdentityInput } from "./core/validate.js";
export { redactText, redactingLogger } from "./log/redact.js";
export type { RedactOptions } from "./log/redact.js";
export { quietMatrixSdkLogs } from "./log/quietMatrixSdk.js";
export type { MatrixSdkLogLevel } from "./log/quietMatrixSdk.js";
export type { EffectiveTiming, Timing, TimingOptions } from "./core/config.js";
export {
  CALL_MEMBER_EVENT_TYPE,
  DEFAULT_SLOT,
  LEFT_CONTENT,
  isLeftContent,
  makeMembershipContent,
  membershipStateKey,
  wireCallId,
} from "./membership/content.js";
export type {
  CallIntent,
  MembershipContent,
  MembershipFields,
  Slot,
  Transport,
} from "./membership/content.js";
export {
  WidgetBackend,
  WidgetCapabilityError,
  widgetCapabilities,
  sendStateCapability,
  receiveStateCapability,
  MSC4157_SEND_DELAYED_EVENT,
  MSC4157_UPDATE_DELAYED_EVENT,
  MSC4407_SEND_STICKY_EVENT,
  MSC4407_RECEIVE_STICKY_EVENT,
  sendEventCapability,
  MSC4533_DELEGATE_DELAYED_LEAVE,
} from "./backends/widget.js";
export type {
  WidgetApiLike,
  WidgetBackendOptions,
  WidgetCapabilityOptions,
  WidgetMembershipKey,
} from "./backends/widget.js";
export {
  DEFAULT_MEMBERSHIP_EXPIRES_MS,
  acceptedStateKeys,
  membershipContentErrors,
  membershipLookupFrom,
  ownMembership,
  parseCallMemberEvent,
  slotOfContent,
} from "./membership/parse.js";
export type {
  CallMember,
  IgnoredReason,
  MembershipLookup,
  ParsedMembership,
  ParseOptions,
  RejectedMembership,
  RejectionReason,
  StateEventLike,
} from "./membership/parse.js";
export {
  JS_SDK_EVENTS,
  WidgetStateSource,
  callMembers$,
  callMembersState$,
  eventsStateSource,
  ownMembership$,
  rejectedMemberships$,
  roomStateSource,
  sameMembers,
  widgetObserverCapabilities,
  widgetStateSource,
} from "./membership/observer.js";
export type {
  CallMembersOptions,
  CallMembersSnapshot,
  RoomStateClient,
  RoomLike,
  MatrixEventLike,
  RoomStateSnapshot,
  RoomStateSource,
  WidgetStateApi,
  WidgetStateSourceOptions,
  SourceLike,
} from "./membership/observer.js";
export { EXPIRY_BATCH_MS } from "./membership/observer.js";
export { STICKY_BATCH_MS } from "./membership/widgetSource.js";
export type { RoomStateChanges, RoomStateSourceOptions } from "./membership/observer.js";
export { evaluateCallMembers } from "./membership/store.js";
export type { CallMembersEvaluation } from "./membership/store.js";
export { CREATED_TS_LEEWAY_MS } from "./membership/facts.js";
export {
  CallMembersSourceEndedError,
  WAIT_FOR_CALL_MEMBERS_TIMEOUT_MS,
  currentCallMembers,
  includesDevice,
  waitForCallMembers,
  watchCallMembers,
} from "./membership/members.js";
export type { CallMembersWatch, WaitForCallMembersOptions } from "./membership/members.js";
// Our own device in those lists, from the manager's confirmed membership (`manager` option).
export type {
  OwnMembershipRecord,
  OwnMembershipReport,
  OwnMembershipReporter,
  OwnWrite,
} from "./membership/own.js";
// Sticky memberships (MatrixRTC 2.0, MSC4143 + MSC4354), as the observer reads them.
export {
  MAX_STICKY_DURATION_MS,
  RTC_MEMBER_EVENT_TYPE,
  RTC_SLOT_EVENT_TYPE,
  parseStickyMembershipEvent,
} from "./membership/sticky.js";
export type { StickyMembershipContent } from "./membership/sticky.js";
export type { StaticParse } from "./membership/parse.js";
