import type { IOpenIDToken } from "matrix-js-sdk";
import { OpenIDRequestState, type IOpenIDUpdate, type SimpleObservable } from "matrix-widget-api";

/**
 * Whether a widget gets an OpenID token (proof of the user's Matrix id it can show a third party, such
 * as a LiveKit token service): `"allow"`, `"deny"`, or a function that decides per request (it may ask
 * the user; while it is pending the widget is told so and waits).
 */
export type OpenIdPolicy = "allow" | "deny" | (() => boolean | Promise<boolean>);

/**
 * Answers one `get_openid` request according to `policy`, with a token from `requestToken` (the
 * client's `POST /user/{userId}/openid/request_token`). A token that cannot be had blocks the request
 * (the widget API has no error state once the user was asked).
 */
export function answerOpenId(
  observer: SimpleObservable<IOpenIDUpdate>,
  policy: OpenIdPolicy,
  requestToken: () => Promise<IOpenIDToken>,
): void {
  const block = (): void => observer.update({ state: OpenIDRequestState.Blocked });
  const grant = (): void => {
    requestToken().then(
      (token) =>
        observer.update({
          state: OpenIDRequestState.Allowed,
          token: {
            access_token: token.access_token,
            expires_in: token.expires_in,
            matrix_server_name: token.matrix_server_name,
            token_type: token.token_type,
          },
        }),
      block,
    );
  };
  if (policy === "allow") return grant();
  if (policy === "deny") return block();
  let decision: boolean | Promise<boolean>;
  try {
    decision = policy();
  } catch {
    return block();
  }
  if (typeof decision === "boolean") return decision ? grant() : block();
  // A decision that takes time (a prompt): tell the widget to wait instead of letting it time out.
  observer.update({ state: OpenIDRequestState.PendingUserConfirmation });
  decision.then((allowed) => (allowed ? grant() : block()), block);
}
