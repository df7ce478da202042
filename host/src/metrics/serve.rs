//! `GET /metrics`, `/healthz` and `/readyz`, the status page at `/` with
//! its data at `/status`, and `/trace?record=` for the page's links,
//! served with axum on the pipeline's I/O runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

use super::scrape::registry;
use super::stats::Stats;
use crate::budget::Budget;

#[derive(Clone)]
struct Served {
    registry: Arc<Registry>,
    stats: Arc<Stats>,
    budget: Arc<Budget>,
    query: Arc<crate::query::Query>,
    /// One trace at a time: each reads the commit log as `lineage trace`
    /// does, which on a long log on S3 is many requests.
    tracing: Arc<tokio::sync::Semaphore>,
}

async fn page(State(s): State<Served>) -> impl IntoResponse {
    let report = s.stats.status.report(&s.stats, &s.budget);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        crate::status::page(&report),
    )
}

async fn status(State(s): State<Served>) -> impl IntoResponse {
    let report = s.stats.status.report(&s.stats, &s.budget);
    ([(header::CACHE_CONTROL, "no-store")], Json(report))
}

#[derive(serde::Deserialize)]
struct TraceQuery {
    record: String,
}

/// The page's drop examples link here: what `lineage trace --json` says.
async fn trace(State(s): State<Served>, Query(q): Query<TraceQuery>) -> axum::response::Response {
    let Some((source, offset)) = crate::cli::trace::parse_record(&q.record).ok() else {
        return (
            StatusCode::BAD_REQUEST,
            format!("{:?} is not TOPIC/PARTITION@OFFSET\n", q.record),
        )
            .into_response();
    };
    let Ok(_permit) = s.tracing.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "2")],
            "another trace is running; try again\n",
        )
            .into_response();
    };
    // The query's future is not Send (its stream of reads borrows), so it
    // runs on a blocking thread of the same runtime.
    let io = tokio::runtime::Handle::current();
    let query = s.query.clone();
    let result =
        tokio::task::spawn_blocking(move || io.block_on(query.trace_record(&source, offset))).await;
    let Ok(result) = result else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the trace failed\n").into_response();
    };
    match result {
        Ok(t) => Json(t).into_response(),
        Err(e) => (
            StatusCode::NOT_FOUND,
            format!("{}\n", crate::error::render(&e)),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<Served>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("encoding metrics failed: {e}\n"),
        ),
    }
}

/// Liveness: false only once the pipeline has failed. A store or broker
/// outage is not a reason to restart: the pipeline waits it out.
async fn healthz(State(s): State<Served>) -> impl IntoResponse {
    if s.stats.health.live() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "failed\n")
    }
}

/// Readiness: in the group and consuming, not stopping.
async fn readyz(State(s): State<Served>) -> impl IntoResponse {
    if s.stats.health.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds the endpoints' address; fails fast, naming the setting.
pub fn bind(address: SocketAddr) -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| format!("METRICS_ADDRESS={address}: cannot listen: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("METRICS_ADDRESS={address}: {e}"))?;
    Ok(listener)
}

/// Serves the endpoints until the runtime stops; `query` answers the
/// page's trace links.
pub async fn serve(
    listener: std::net::TcpListener,
    stats: Arc<Stats>,
    budget: Arc<Budget>,
    query: Arc<crate::query::Query>,
) {
    let served = Served {
        registry: Arc::new(registry(stats.clone(), budget.clone())),
        stats,
        budget,
        query,
        tracing: Arc::new(tokio::sync::Semaphore::new(1)),
    };
    let app = Router::new()
        .route("/", get(page))
        .route("/status", get(status))
        .route("/trace", get(trace))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(served);
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "metrics endpoint unavailable");
            return;
        }
    };
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "metrics endpoint stopped");
    }
}
