// Header rewriting for the link's two hops. The link is a reverse proxy, so hop-by-hop headers (which
// describe one TCP connection) must not cross it, while everything end-to-end, Authorization included,
// passes untouched. Bodies are buffered by the link, so framing is re-done with Content-Length.

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Copy the end-to-end headers: drops hop-by-hop ones, those named by `Connection`, and Content-Length. */
function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? "")
      .split(",")
      .map((h) => h.trim().toLowerCase())
      .filter((h) => h !== ""),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || name === "content-length") continue;
    out[name] = value;
  }
  return out;
}

/** Headers for the forwarded request: `Host` names the target, as if the client had dialled it. */
export function requestHeaders(
  headers: IncomingHttpHeaders,
  bodyLength: number,
  targetHost: string,
): OutgoingHttpHeaders {
  const out = endToEnd(headers);
  out.host = targetHost;
  // Keep "no body" distinct from "empty body": a GET without Content-Length stays without one.
  const hadBody = headers["content-length"] !== undefined || headers["transfer-encoding"] !== undefined;
  if (hadBody || bodyLength > 0) out["content-length"] = bodyLength;
  return out;
}

/** Headers for the answer to the client. Bodiless answers keep the target's Content-Length as is. */
export function responseHeaders(
  headers: IncomingHttpHeaders,
  bodyLength: number,
  bodiless: boolean,
): OutgoingHttpHeaders {
  const out = endToEnd(headers);
  if (!bodiless) out["content-length"] = bodyLength;
  else if (headers["content-length"] !== undefined) out["content-length"] = headers["content-length"];
  return out;
}
