//! `http_request`: one HTTP call (the webhook example). The response comes back as the
//! result: status, headers, and the body up to `tasks.http_max_response_bytes` (the rest is
//! not read; `body_truncated` says so).
//!
//! Failures: a 5xx, 408 or 429 answer, a connect error or a timeout is retryable; any other
//! 4xx, or an answer that is not valid HTTP, is permanent (another attempt gets the same).
//!
//! **Not idempotent.** The request may have reached the server and had its effect even when
//! the attempt then fails (a timeout while the server was still working, a worker killed
//! mid-call), and errand then sends it again. Targets that must see a call once should
//! deduplicate, e.g. on an `Idempotency-Key` header the client puts in `headers`.
//!
//! The request item type and its execution are shared with `fan_out`.
//!
//! Destinations: `tasks.http_destinations` is checked at submit for what the URL says, and
//! by the worker's HTTP client on every address a name resolves to and every redirect
//! (`services.rs`), so a refused destination is never connected to; such a task fails for
//! good with `destination_denied`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use reqwest::{
    Method, StatusCode, Url,
    header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use errand_core::settings::{DestinationPolicy, HostVerdict};

use crate::{Failure, Invalid, Limits, TaskContext, TaskKind};

/// A request refused by `tasks.http_destinations`; travels inside reqwest's errors (from the
/// resolver or the redirect policy) so [`classify`] can tell it from a connect failure.
#[derive(Debug)]
pub(crate) struct DestinationDenied(pub String);

impl std::fmt::Display for DestinationDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "destination refused: {}", self.0)
    }
}

impl std::error::Error for DestinationDenied {}

/// What the URL alone lets the policy decide: a literal address, or a host name it lists.
pub(crate) fn check_destination(policy: &DestinationPolicy, url: &Url) -> Result<(), String> {
    match url.host_str() {
        Some(host) => match policy.check_name(host) {
            HostVerdict::Denied(why) => Err(why),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

/// The `http_request` kind's [`TaskKind`] impl; the catalog registers it.
#[derive(Debug)]
pub struct HttpRequest;

/// HTTP methods errand sends.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `GET`, the default when a payload gives no `method`.
    #[default]
    Get,
    /// `HEAD`: the answer's status and headers, no body.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
}

impl From<HttpMethod> for Method {
    fn from(m: HttpMethod) -> Self {
        match m {
            HttpMethod::Get => Method::GET,
            HttpMethod::Head => Method::HEAD,
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Patch => Method::PATCH,
            HttpMethod::Delete => Method::DELETE,
            HttpMethod::Options => Method::OPTIONS,
        }
    }
}

/// One HTTP request: the payload of `http_request`, and each item of `fan_out`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"method": "POST", "url": "https://example.com/hooks/order", "headers": {"Idempotency-Key": "order-42"}, "body": {"order": 42}}))]
pub struct HttpRequestPayload {
    /// The request's method; `GET` when absent.
    #[serde(default)]
    #[schema(inline)]
    pub method: HttpMethod,
    /// An absolute http:// or https:// URL.
    pub url: String,
    /// Request headers, name → value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A string is sent as is (`text/plain` unless `headers` says otherwise); any other JSON
    /// value is sent as JSON (`application/json`).
    #[serde(default)]
    pub body: Option<Value>,
    /// Bound on the whole exchange, response body included; default
    /// `tasks.http_default_timeout_secs`, at most `tasks.http_max_timeout_secs`.
    #[serde(default)]
    #[schema(exclusive_minimum = 0, example = 10)]
    pub timeout_secs: Option<f64>,
}

/// Result of the `http_request` kind: the response, whose status is below 400 (a 4xx or
/// 5xx answer fails the attempt instead).
#[derive(Debug, Serialize, ToSchema)]
pub struct HttpRequestResult {
    /// The answer's HTTP status (below 400: a 4xx or 5xx fails the attempt instead).
    #[schema(minimum = 100, maximum = 399, example = 200)]
    pub status: u16,
    /// Response headers, lowercase name → value (repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// The body as text (invalid UTF-8 replaced), at most `tasks.http_max_response_bytes`.
    pub body: String,
    /// True when the body was longer than the cap and cut there.
    pub body_truncated: bool,
    /// Milliseconds from sending the request to the end of the body read (or the cap).
    pub elapsed_ms: u64,
}

/// The limits [`HttpRequestPayload::check_at`] applies, written into its JSON Schema.
pub(crate) fn document_request(schema: &mut Value, limits: &Limits) {
    schema["properties"]["timeout_secs"]["maximum"] = json!(limits.http_max_timeout_secs);
}

impl HttpRequestPayload {
    /// Checks the request; `at` is where it sits in the payload (`payload`,
    /// `payload.requests[2]`) so the error names the field.
    pub(crate) fn check_at(&self, limits: &Limits, at: &str) -> Result<(), Invalid> {
        let url = parse_url(&self.url).map_err(|m| Invalid::new(format!("{at}.url"), m))?;
        check_destination(&limits.http_destinations, &url).map_err(|why| {
            Invalid::new(format!("{at}.url"), format!("destination refused: {why}"))
        })?;
        for (name, value) in &self.headers {
            let field = || format!("{at}.headers.{name}");
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Invalid::new(field(), "not a valid header name"))?;
            HeaderValue::from_str(value)
                .map_err(|_| Invalid::new(field(), "not a valid header value"))?;
        }
        if let Some(t) = self.timeout_secs
            && !(t.is_finite() && t > 0.0 && t <= limits.http_max_timeout_secs)
        {
            return Err(Invalid::new(
                format!("{at}.timeout_secs"),
                format!(
                    "must be more than 0 and at most {} (tasks.http_max_timeout_secs)",
                    limits.http_max_timeout_secs
                ),
            ));
        }
        Ok(())
    }

    fn timeout(&self, limits: &Limits) -> Duration {
        Duration::from_secs_f64(
            self.timeout_secs
                .unwrap_or(limits.http_default_timeout_secs),
        )
    }
}

fn parse_url(url: &str) -> Result<Url, String> {
    let u = Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be http or https, not `{}`",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host".into());
    }
    Ok(u)
}

/// A completed exchange, whatever its status.
pub(crate) struct Exchange {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// At most `tasks.http_max_response_bytes`.
    pub body: Vec<u8>,
    pub truncated: bool,
    pub elapsed: Duration,
}

impl Exchange {
    /// The failure this status stands for, if any: 5xx, 408 and 429 may go away on their
    /// own; any other 4xx will not.
    pub(crate) fn status_failure(&self) -> Option<Failure> {
        let s = self.status;
        if !(s.is_client_error() || s.is_server_error()) {
            return None;
        }
        let snippet: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(200)
            .collect();
        let message = format!("HTTP {s}: {snippet}");
        let retryable = s.is_server_error()
            || s == StatusCode::TOO_MANY_REQUESTS
            || s == StatusCode::REQUEST_TIMEOUT;
        Some(if retryable {
            Failure::retryable("http_status", message)
        } else {
            Failure::permanent("http_status", message)
        })
    }
}

/// Sends `req` and reads its response body up to the configured cap. Transport failures
/// come back classified; the status is left to the caller ([`Exchange::status_failure`]).
pub(crate) async fn execute(
    client: &reqwest::Client,
    req: &HttpRequestPayload,
    limits: &Limits,
) -> Result<Exchange, Failure> {
    let url = parse_url(&req.url).map_err(|m| Failure::permanent("invalid_payload", m))?;
    // Again here: the policy may have changed since the task was submitted.
    check_destination(&limits.http_destinations, &url).map_err(|why| {
        Failure::permanent("destination_denied", DestinationDenied(why).to_string())
    })?;
    let mut headers = HeaderMap::new();
    for (name, value) in &req.headers {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(Failure::permanent(
                "invalid_payload",
                format!("header `{name}` is not valid"),
            ));
        };
        headers.append(n, v);
    }
    let mut builder = client
        .request(req.method.into(), url)
        .timeout(req.timeout(limits));
    match &req.body {
        None => {}
        Some(Value::String(s)) => {
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
            }
            builder = builder.body(s.clone());
        }
        Some(v) => {
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            builder = builder.body(v.to_string());
        }
    }
    let started = Instant::now();
    let mut res = builder
        .headers(headers)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let cap = limits.http_max_response_bytes;
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = res.chunk().await.map_err(|e| classify(&e))? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Exchange {
        status: res.status(),
        headers: res.headers().clone(),
        body,
        truncated,
        elapsed: started.elapsed(),
    })
}

/// Transient transport trouble is retryable; an answer that is not valid HTTP (or a
/// redirect loop) is permanent.
fn classify(e: &reqwest::Error) -> Failure {
    let message = chain(e);
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(d) = s.downcast_ref::<DestinationDenied>() {
            return Failure::permanent("destination_denied", d.to_string());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return Failure::retryable("timeout", message);
    }
    if e.is_connect() {
        return Failure::retryable("connect", message);
    }
    if e.is_redirect() {
        return Failure::permanent("redirect", message);
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() {
                return Failure::permanent("invalid_response", message);
            }
            break;
        }
        source = s.source();
    }
    if e.is_decode() {
        return Failure::permanent("invalid_response", message);
    }
    // The connection closed or reset mid-exchange: the next attempt may get through.
    Failure::retryable("request", message)
}

/// The error and its causes on one line (reqwest's own message hides the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

pub(crate) fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

pub(crate) fn cancelled() -> Failure {
    Failure::permanent("cancelled", "the request was cancelled")
}

impl TaskKind for HttpRequest {
    type Payload = HttpRequestPayload;
    type Output = HttpRequestResult;
    const NAME: &'static str = "http_request";
    const SUMMARY: &'static str = "One HTTP request; the result is the response (body capped). Retries 5xx/429/timeouts; not idempotent.";
    const IDEMPOTENT: bool = false;

    fn example() -> Value {
        json!({
            "method": "POST",
            "url": "https://example.com/hooks/order",
            "headers": {"Idempotency-Key": "order-42"},
            "body": {"order": 42},
            "timeout_secs": 10
        })
    }

    fn check(p: &HttpRequestPayload, limits: &Limits) -> Result<(), Invalid> {
        p.check_at(limits, "payload")
    }

    fn document(schema: &mut Value, limits: &Limits) {
        document_request(schema, limits);
    }

    async fn run(ctx: TaskContext, p: HttpRequestPayload) -> Result<HttpRequestResult, Failure> {
        let services = ctx.services();
        let client = services.http()?;
        ctx.report(0, format!("{} {}", Method::from(p.method), p.url));
        let ex = tokio::select! {
            r = execute(client, &p, &services.limits) => r?,
            _ = ctx.cancelled() => return Err(cancelled()),
        };
        if let Some(f) = ex.status_failure() {
            return Err(f);
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &ex.headers {
            let v = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|s| {
                    s.push_str(", ");
                    s.push_str(&v);
                })
                .or_insert_with(|| v.into_owned());
        }
        Ok(HttpRequestResult {
            status: ex.status.as_u16(),
            headers,
            body: String::from_utf8_lossy(&ex.body).into_owned(),
            body_truncated: ex.truncated,
            elapsed_ms: millis(ex.elapsed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testing::payload;

    fn check(v: Value) -> Result<(), Invalid> {
        HttpRequest::check(&payload::<HttpRequest>(v)?, &Limits::default())
    }

    #[test]
    fn validation_names_the_field() {
        assert!(check(json!({"url": "http://127.0.0.1:9/x"})).is_ok());
        assert!(check(HttpRequest::example()).is_ok());
        let e = check(json!({"url": "ftp://example.com/"})).unwrap_err();
        assert_eq!(e.field, "payload.url");
        assert!(e.message.contains("ftp"), "{e}");
        assert_eq!(
            check(json!({"url": "not a url"})).unwrap_err().field,
            "payload.url"
        );
        assert_eq!(check(json!({})).unwrap_err().field, "payload");
        assert_eq!(
            check(json!({"url": "http://x", "method": "BREW"}))
                .unwrap_err()
                .field,
            "payload.method"
        );
        assert_eq!(
            check(json!({"url": "http://x", "headers": {"bad name": "v"}}))
                .unwrap_err()
                .field,
            "payload.headers.bad name"
        );
        assert_eq!(
            check(json!({"url": "http://x", "headers": {"X-A": "line\nbreak"}}))
                .unwrap_err()
                .field,
            "payload.headers.X-A"
        );
        assert_eq!(
            check(json!({"url": "http://x", "timeout_secs": 301}))
                .unwrap_err()
                .field,
            "payload.timeout_secs"
        );
        assert_eq!(
            check(json!({"url": "http://x", "timeout_secs": 0}))
                .unwrap_err()
                .field,
            "payload.timeout_secs"
        );
        assert_eq!(
            check(json!({"url": "http://x", "verb": "GET"}))
                .unwrap_err()
                .field,
            "payload.verb"
        );
    }

    #[test]
    fn statuses_are_classified() {
        let ex = |code: u16| Exchange {
            status: StatusCode::from_u16(code).unwrap(),
            headers: HeaderMap::new(),
            body: b"nope".to_vec(),
            truncated: false,
            elapsed: Duration::ZERO,
        };
        for ok in [200, 204, 301, 304] {
            assert!(ex(ok).status_failure().is_none(), "{ok}");
        }
        for retry in [500, 502, 503, 429, 408] {
            assert!(ex(retry).status_failure().unwrap().retryable, "{retry}");
        }
        for permanent in [400, 401, 404, 422] {
            let f = ex(permanent).status_failure().unwrap();
            assert!(!f.retryable, "{permanent}");
            assert!(f.message.contains("nope"), "{f:?}");
        }
    }
}
