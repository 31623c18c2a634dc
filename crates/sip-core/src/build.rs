//! Requests the transaction layer derives from others: the CANCEL of an INVITE (RFC 3261 §9.1)
//! and the ACK of a 3xx-6xx (RFC 3261 §17.1.1.3).

use sip_msg::{HeaderName, Headers, Method, Request, Response};

/// The top Via value of a request, exactly as it was sent (first comma-separated value).
fn top_via_value(request: &Request) -> Option<String> {
    let vias = request.headers.values(&HeaderName::Via)?;
    vias.first().map(|v| (*v).to_owned())
}

/// Headers shared by CANCEL and ACK: one Via (the request's top Via), then the listed headers
/// copied from `request`, Route headers, Max-Forwards and the CSeq with `method`.
fn derived(request: &Request, method: Method, to: Option<&str>) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = top_via_value(request) {
        headers.push(HeaderName::Via, via);
    }
    headers.push(HeaderName::MaxForwards, "70");
    for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        let value = match (&name, to) {
            (HeaderName::To, Some(to)) => Some(to),
            _ => request.headers.get(&name),
        };
        if let Some(value) = value {
            headers.push(name, value.to_owned());
        }
    }
    if let Some(cseq) = request.cseq() {
        headers.push(HeaderName::CSeq, format!("{} {}", cseq.seq, method));
    }
    // RFC 3261 §9.1 and §17.1.1.3: Route headers of the request are copied.
    for route in request.headers.get_all(&HeaderName::Route) {
        headers.push(HeaderName::Route, route.to_owned());
    }
    Request {
        method,
        uri_raw: request.uri_raw.clone(),
        version: "SIP/2.0".into(),
        headers,
        body: Vec::new(),
    }
}

/// Builds the CANCEL for `invite` (RFC 3261 §9.1): same Request-URI, Call-ID, To, From and
/// CSeq number, the INVITE's top Via only (so it shares the branch), and its Route headers.
pub fn build_cancel(invite: &Request) -> Request {
    derived(invite, Method::Cancel, None)
}

/// Builds the ACK for a 3xx-6xx response to `invite` (RFC 3261 §17.1.1.3): Request-URI,
/// Call-ID, From, top Via and Route from the INVITE, To (with its tag) from the response.
pub fn build_ack_for_non_2xx(invite: &Request, response: &Response) -> Request {
    derived(invite, Method::Ack, response.headers.get(&HeaderName::To))
}
