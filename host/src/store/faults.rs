//! Store faults on demand, to prove that exactly-once survives a flaky
//! network to S3: `LINEAGE_STORE_FAULTS=rate=0.1[,stall=2s]` makes that
//! share of HTTP requests fail the ways a network and a busy store do, and
//! `deny=POST:/bucket/prefix[:uploadId]` answers the requests with that
//! method, path prefix and query key 403 AccessDenied, as a missing IAM
//! permission would, and `lose=POST:/bucket/prefix[:uploads]` loses the
//! first reply to each such request after the store acted on it, so that
//! object_store retries it (a retried start of a multipart upload leaves
//! two uploads at the key).
//!
//! It sits where object_store sends requests (its `HttpConnector`), below
//! object_store's own retries, so every layer above is exercised as in
//! production. Like the failpoints, it does nothing unless the variable is
//! set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse,
    HttpResponseBody, HttpService, ReqwestConnector,
};
use rand::Rng;

pub const VARIABLE: &str = crate::setting::LINEAGE_STORE_FAULTS;

#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Share of requests that fail, 0 to 1.
    pub rate: f64,
    /// How long a stalled request hangs before it times out.
    pub stall: Duration,
    /// Requests answered 403.
    pub deny: Vec<Deny>,
    /// Requests whose first reply is lost.
    pub lose: Vec<Deny>,
}

/// Requests picked by method, path prefix and query key.
#[derive(Debug, Clone, PartialEq)]
pub struct Deny {
    pub method: String,
    pub path_prefix: String,
    /// A query parameter the request must have, e.g. `uploadId` for the
    /// parts and the completion of a multipart upload.
    pub query_key: Option<String>,
}

impl Deny {
    fn parse(value: &str) -> Result<Self, String> {
        let mut parts = value.splitn(3, ':');
        let (Some(method), Some(path_prefix)) = (parts.next(), parts.next()) else {
            return Err(format!(
                "{VARIABLE}: deny={value}: expected METHOD:/path-prefix[:query-key]"
            ));
        };
        if !path_prefix.starts_with('/') {
            return Err(format!(
                "{VARIABLE}: deny={value}: the path prefix must start with /"
            ));
        }
        Ok(Self {
            method: method.to_ascii_uppercase(),
            path_prefix: path_prefix.to_owned(),
            query_key: parts.next().map(str::to_owned),
        })
    }

    fn matches(&self, req: &HttpRequest) -> bool {
        req.method().as_str() == self.method
            && req.uri().path().starts_with(&self.path_prefix)
            && self.query_key.as_ref().is_none_or(|key| {
                req.uri().query().is_some_and(|q| {
                    q.split('&')
                        .any(|kv| kv.split('=').next() == Some(key.as_str()))
                })
            })
    }
}

impl Faults {
    /// The faults `LINEAGE_STORE_FAULTS` asks for, if any.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var(VARIABLE) {
            Ok(spec) if !spec.trim().is_empty() => Self::parse(&spec).map(Some),
            _ => Ok(None),
        }
    }

    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut faults = Faults {
            rate: 0.0,
            stall: Duration::from_secs(2),
            deny: Vec::new(),
            lose: Vec::new(),
        };
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{VARIABLE}: expected key=value, got {item:?}"))?;
            match key {
                "rate" => {
                    faults.rate = value
                        .parse()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| format!("{VARIABLE}: rate={value} is not in 0..1"))?
                }
                "stall" => {
                    faults.stall = humantime::parse_duration(value)
                        .map_err(|e| format!("{VARIABLE}: stall={value}: {e}"))?
                }
                "deny" => faults.deny.push(Deny::parse(value)?),
                "lose" => faults.lose.push(Deny::parse(value)?),
                _ => {
                    return Err(format!(
                        "{VARIABLE}: unknown key {key:?} (rate, stall, deny, lose)"
                    ));
                }
            }
        }
        Ok(faults)
    }
}

/// object_store's own connector with faults in front of it.
#[derive(Debug)]
pub struct FaultyConnector(pub Faults);

impl HttpConnector for FaultyConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(FaultyService {
            inner: ReqwestConnector::default().connect(options)?,
            faults: self.0.clone(),
            injected: AtomicU64::new(0),
            lost: std::sync::Mutex::new(std::collections::HashSet::new()),
        }))
    }
}

#[derive(Debug)]
struct FaultyService {
    inner: HttpClient,
    faults: Faults,
    injected: AtomicU64,
    /// Requests (method and URI) whose reply was lost once already.
    lost: std::sync::Mutex<std::collections::HashSet<String>>,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The connection is refused or reset before the request is sent.
    Reset,
    /// The request reaches the store, the reply is lost.
    LostReply,
    /// The request reaches the store, the reply never comes.
    Stall,
    /// The store sheds load: 503 SlowDown.
    SlowDown,
}

#[derive(Debug, thiserror::Error)]
#[error("injected store fault ({0:?})")]
struct Injected(Fault);

#[async_trait::async_trait]
impl HttpService for FaultyService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        if self.faults.deny.iter().any(|d| d.matches(&req)) {
            tracing::warn!(method = %req.method(), path = req.uri().path(), "injected store fault: access denied");
            return Ok(http::Response::builder()
                .status(403)
                .body(HttpResponseBody::from(
                    "<Error><Code>AccessDenied</Code><Message>injected</Message></Error>"
                        .to_owned(),
                ))
                .expect("static response"));
        }
        if self.faults.lose.iter().any(|d| d.matches(&req)) {
            let seen = format!("{} {}", req.method(), req.uri());
            if self.lost.lock().expect("lost lock").insert(seen) {
                tracing::warn!(method = %req.method(), path = req.uri().path(), "injected store fault: reply lost");
                let _ = self.inner.execute(req).await;
                return Err(HttpError::new(
                    HttpErrorKind::Interrupted,
                    Injected(Fault::LostReply),
                ));
            }
        }
        let fault = {
            let mut rng = rand::rng();
            rng.random_bool(self.faults.rate)
                .then(|| match rng.random_range(0..4) {
                    0 => Fault::Reset,
                    1 => Fault::LostReply,
                    2 => Fault::Stall,
                    _ => Fault::SlowDown,
                })
        };
        let Some(fault) = fault else {
            return self.inner.execute(req).await;
        };
        let n = self.injected.fetch_add(1, Ordering::Relaxed) + 1;
        // The path only: a query string can carry signatures.
        tracing::warn!(
            method = %req.method(),
            path = req.uri().path(),
            fault = ?fault,
            injected = n,
            "injected store fault"
        );
        match fault {
            Fault::Reset => Err(HttpError::new(HttpErrorKind::Connect, Injected(fault))),
            Fault::SlowDown => Ok(http::Response::builder()
                .status(503)
                .body(HttpResponseBody::from(
                    "<Error><Code>SlowDown</Code><Message>injected</Message></Error>".to_owned(),
                ))
                .expect("static response")),
            Fault::LostReply => {
                let _ = self.inner.execute(req).await;
                Err(HttpError::new(HttpErrorKind::Interrupted, Injected(fault)))
            }
            Fault::Stall => {
                let _ = self.inner.execute(req).await;
                tokio::time::sleep(self.faults.stall).await;
                Err(HttpError::new(HttpErrorKind::Timeout, Injected(fault)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!(
            Faults::parse("rate=0.1, stall=500ms").unwrap(),
            Faults {
                rate: 0.1,
                stall: Duration::from_millis(500),
                deny: Vec::new(),
                lose: Vec::new(),
            }
        );
        let deny = Faults::parse("deny=post:/b/out:uploadId").unwrap().deny;
        assert_eq!(
            deny,
            [Deny {
                method: "POST".into(),
                path_prefix: "/b/out".into(),
                query_key: Some("uploadId".into()),
            }]
        );
        let request = |uri: &str| {
            http::Request::builder()
                .method("POST")
                .uri(uri)
                .body(object_store::client::HttpRequestBody::empty())
                .unwrap()
        };
        assert!(deny[0].matches(&request("http://s3/b/out/x.parquet?uploadId=7")));
        assert!(!deny[0].matches(&request("http://s3/b/out/x.parquet?uploads=")));
        assert!(!deny[0].matches(&request("http://s3/b/wal/x?uploadId=7")));
        assert!(Faults::parse("deny=POST").is_err());
        assert!(Faults::parse("rate=2").unwrap_err().contains("rate=2"));
        assert!(Faults::parse("often").unwrap_err().contains("key=value"));
        assert!(
            Faults::parse("burst=1")
                .unwrap_err()
                .contains("unknown key")
        );
    }
}
