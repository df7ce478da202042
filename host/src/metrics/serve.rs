//! `GET /metrics`, `/healthz` and `/readyz`, served with axum on the
//! pipeline's I/O runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
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

/// Serves `/metrics`, `/healthz` and `/readyz` until the runtime stops.
pub async fn serve(listener: std::net::TcpListener, stats: Arc<Stats>, budget: Arc<Budget>) {
    let served = Served {
        registry: Arc::new(registry(stats.clone(), budget)),
        stats,
    };
    let app = Router::new()
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
