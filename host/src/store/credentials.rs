//! Which AWS credentials an S3 location signs with, and what to say when
//! the chain finds none.
//!
//! object_store walks the standard chain (static keys, web identity for
//! IRSA, ECS and EKS container credentials) and ends at the instance
//! metadata service. Off EC2 that last step fails in whatever way the
//! network fails (a timeout, a proxy's 403 for 169.254.169.254), after
//! minutes of retries, and the message names only the address. Where the
//! chain ends there, its answer is asked for once with a short timeout, and
//! a failure is reported as what it is: no credentials anywhere, with where
//! Lineage looked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use object_store::CredentialProvider;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsCredential, AwsCredentialProvider};

/// The instance metadata service object_store asks unless told otherwise.
const DEFAULT_METADATA_ENDPOINT: &str = "http://169.254.169.254";

/// How long the metadata service may take to answer the first time; the
/// AWS SDKs give it a second per try.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the chain looked, for the message.
pub fn looked_for(endpoint: &str) -> String {
    format!(
        "no AWS credentials found: looked for AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN (IRSA), AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI (ECS, EKS), and the instance metadata service at {endpoint}, which gave none"
    )
}

/// No credentials in the environment and none from instance metadata.
#[derive(Debug, thiserror::Error)]
#[error("{}", looked_for(endpoint))]
pub struct NoCredentials {
    pub endpoint: String,
    /// What the metadata service did, for debugging.
    #[source]
    pub detail: Box<dyn std::error::Error + Send + Sync>,
}

/// Whether the chain, configured as `builder` is, ends at instance
/// metadata: no other source is set. Mirrors `AmazonS3Builder::build`.
fn metadata_endpoint(builder: &AmazonS3Builder) -> Option<String> {
    let set = |key: AmazonS3ConfigKey| {
        builder
            .get_config_value(&key)
            .is_some_and(|v| !v.is_empty())
    };
    let other_source = set(AmazonS3ConfigKey::AccessKeyId)
        || set(AmazonS3ConfigKey::SecretAccessKey)
        || (set(AmazonS3ConfigKey::WebIdentityTokenFile) && set(AmazonS3ConfigKey::RoleArn))
        || set(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
        || (set(AmazonS3ConfigKey::ContainerCredentialsFullUri)
            && set(AmazonS3ConfigKey::ContainerAuthorizationTokenFile))
        || builder
            .get_config_value(&AmazonS3ConfigKey::SkipSignature)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    (!other_source).then(|| {
        builder
            .get_config_value(&AmazonS3ConfigKey::MetadataEndpoint)
            .unwrap_or_else(|| DEFAULT_METADATA_ENDPOINT.into())
    })
}

/// The builder, with the chain's last step explained if it ends at
/// instance metadata.
pub fn explained(builder: AmazonS3Builder) -> object_store::Result<AmazonS3Builder> {
    let Some(endpoint) = metadata_endpoint(&builder) else {
        return Ok(builder);
    };
    let chain = builder.clone().build()?.credentials().clone();
    Ok(builder.with_credentials(Arc::new(FromMetadata {
        chain,
        endpoint,
        answered: AtomicBool::new(false),
    })))
}

/// The chain as S3 signs with it, for another AWS service in `region`
/// (MSK IAM): the same sources, in the same order, with the same
/// explanation when it finds none.
pub fn chain(region: &str) -> object_store::Result<AwsCredentialProvider> {
    // The bucket is never used: the builder wants one before it builds.
    let builder = AmazonS3Builder::from_env()
        .with_region(region)
        .with_bucket_name("lineage");
    Ok(explained(builder)?.build()?.credentials().clone())
}

#[derive(Debug)]
struct FromMetadata {
    chain: AwsCredentialProvider,
    endpoint: String,
    /// Once the service has answered, it exists: a later failure (a slow
    /// refresh) is the environment's and passes through unchanged, to be
    /// retried.
    answered: AtomicBool,
}

#[async_trait::async_trait]
impl CredentialProvider for FromMetadata {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        if self.answered.load(Ordering::Relaxed) {
            return self.chain.get_credential().await;
        }
        let unauthenticated = |detail: Box<dyn std::error::Error + Send + Sync>| {
            object_store::Error::Unauthenticated {
                path: String::new(),
                source: Box::new(NoCredentials {
                    endpoint: self.endpoint.clone(),
                    detail,
                }),
            }
        };
        match tokio::time::timeout(METADATA_TIMEOUT, self.chain.get_credential()).await {
            Ok(Ok(credential)) => {
                self.answered.store(true, Ordering::Relaxed);
                Ok(credential)
            }
            Ok(Err(e)) => Err(unauthenticated(Box::new(e))),
            Err(elapsed) => Err(unauthenticated(Box::new(elapsed))),
        }
    }
}

/// The explanation inside a store error, if the chain found nothing.
pub fn missing(e: &object_store::Error) -> Option<&NoCredentials> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(found) = c.downcast_ref::<NoCredentials>() {
            return Some(found);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_chain_with_nothing_else_ends_at_instance_metadata() {
        let bare = AmazonS3Builder::new().with_bucket_name("b");
        assert_eq!(
            metadata_endpoint(&bare).as_deref(),
            Some(DEFAULT_METADATA_ENDPOINT)
        );
        let keys = bare
            .clone()
            .with_access_key_id("AKIA")
            .with_secret_access_key("s");
        assert_eq!(metadata_endpoint(&keys), None);
        let irsa = bare
            .clone()
            .with_config(AmazonS3ConfigKey::WebIdentityTokenFile, "/var/run/token")
            .with_config(AmazonS3ConfigKey::RoleArn, "arn:aws:iam::1:role/r");
        assert_eq!(metadata_endpoint(&irsa), None);
        let elsewhere = bare.with_config(AmazonS3ConfigKey::MetadataEndpoint, "http://127.0.0.1:9");
        assert_eq!(
            metadata_endpoint(&elsewhere).as_deref(),
            Some("http://127.0.0.1:9")
        );
    }
}
