//! Store faults on demand, to prove that exactly-once survives a flaky
//! network to S3: `LINEAGE_STORE_FAULTS=rate=0.1[,stall=2s]` makes that
//! share of HTTP requests fail the ways a network and a busy store do.
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

pub const VARIABLE: &str = "LINEAGE_STORE_FAULTS";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Share of requests that fail, 0 to 1.
    pub rate: f64,
    /// How long a stalled request hangs before it times out.
    pub stall: Duration,
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
                _ => return Err(format!("{VARIABLE}: unknown key {key:?} (rate, stall)")),
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
            faults: self.0,
            injected: AtomicU64::new(0),
        }))
    }
}

#[derive(Debug)]
struct FaultyService {
    inner: HttpClient,
    faults: Faults,
    injected: AtomicU64,
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
                stall: Duration::from_millis(500)
            }
        );
        assert!(Faults::parse("rate=2").unwrap_err().contains("rate=2"));
        assert!(Faults::parse("often").unwrap_err().contains("key=value"));
        assert!(
            Faults::parse("burst=1")
                .unwrap_err()
                .contains("unknown key")
        );
    }
}
