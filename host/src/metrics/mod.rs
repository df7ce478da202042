//! What an operator watches: Prometheus metrics on `GET /metrics`, and
//! `GET /healthz` and `GET /readyz` for Kubernetes' probes.
//!
//! Counters the pipeline already keeps for its summary (`Stats`) are read
//! at scrape time rather than kept twice; what only metrics need (reasons,
//! histograms, per-partition lag) lives in [`Metrics`].

mod health;
mod labelled;
mod scrape;
mod serve;
mod stats;

pub use health::Health;
pub use labelled::Metrics;
pub use serve::{bind, serve};
pub use stats::{Stats, Summary};
