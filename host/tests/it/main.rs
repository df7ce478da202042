//! Integration tests: the real components in the real runtime, and the
//! `lineage` binary end to end. One binary, so the crate builds once.

mod cli;
mod deploy;
mod durability;
mod enrich;
mod hostile;
mod iceberg;
mod loading;
mod memory;
mod msk_iam;
mod observability;
mod outages;
mod pipeline;
mod pipeline_support;
mod plugins;
mod registry;
mod s3;
mod s3_servers;
mod scale;
mod status;
mod support;
mod swap;
