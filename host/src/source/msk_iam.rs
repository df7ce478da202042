//! AWS_MSK_IAM: SASL/OAUTHBEARER whose token is a SigV4-presigned
//! `kafka-cluster:Connect` URL, made as AWS's own signers make it
//! (aws-msk-iam-sasl-signer-python, -go, -js), from the same credential
//! chain S3 uses (static keys, IRSA's web identity, ECS and EKS container
//! credentials, instance metadata).
//!
//! librdkafka asks for a token through rust-rdkafka's refresh callback
//! when the client starts and again at 80 % of the last token's lifetime;
//! the callback runs inside `poll`, so a client is polled until it holds
//! its first token before anything else talks to the cluster.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use object_store::aws::{AwsCredential, AwsCredentialProvider};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rdkafka::client::OAuthToken;

use crate::error::{Blame, Classify};

/// The value of KAFKA_SASL_MECHANISM that selects this, as MSK's own
/// clients (aws-msk-iam-auth) spell the mechanism.
pub const MECHANISM: &str = "AWS_MSK_IAM";

/// How long a token is valid, as every AWS signer sets it.
pub const LIFETIME: Duration = Duration::from_secs(900);

const SERVICE: &str = "kafka-cluster";
const ACTION: &str = "kafka-cluster:Connect";

/// What SigV4 leaves unescaped in a query (RFC 3986's unreserved set).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Debug, thiserror::Error)]
pub enum MskIamError {
    #[error(
        "no region: KAFKA_BOOTSTRAP_SERVERS={servers} names no MSK host (…kafka.<region>.amazonaws.com), and neither AWS_REGION nor AWS_DEFAULT_REGION is set"
    )]
    NoRegion { servers: String },
    #[error("cannot get AWS credentials: {0}")]
    Credentials(#[source] object_store::Error),
    #[error("cannot sign the token: {0}")]
    Sign(String),
    #[error(
        "librdkafka asked for no token within {0:?}: check that KAFKA_PROPERTIES sets neither sasl.mechanisms, security.protocol nor sasl.oauthbearer.method"
    )]
    NeverAsked(Duration),
    #[error("no AWS credentials within {0:?}")]
    CredentialsTimedOut(Duration),
}

impl Classify for MskIamError {
    fn blame(&self) -> Blame {
        match self {
            MskIamError::NoRegion { .. } => Blame::User,
            MskIamError::Credentials(e) if crate::store::missing_credentials(e).is_some() => {
                Blame::User
            }
            MskIamError::Credentials(_) | MskIamError::CredentialsTimedOut(_) => Blame::Environment,
            MskIamError::Sign(_) => Blame::Internal,
            MskIamError::NeverAsked(_) => Blame::User,
        }
    }
}

/// A signed token and when it stops being valid.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The presigned URL, base64url without padding.
    pub value: String,
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the session token and a signature.
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// The token for `region`, signed with `credential` at `at`.
pub fn sign_token(
    region: &str,
    credential: &AwsCredential,
    at: SystemTime,
) -> Result<Token, MskIamError> {
    let failed = |e: &dyn std::fmt::Display| MskIamError::Sign(e.to_string());
    let host = format!("kafka.{region}.amazonaws.com");
    let action = format!("Action={}", utf8_percent_encode(ACTION, QUERY));
    let url = format!("https://{host}/?{action}");
    let identity = Credentials::new(
        &credential.key_id,
        &credential.secret_key,
        credential.token.clone(),
        None,
        "lineage",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let request = SignableRequest::new(
        "GET",
        &url,
        std::iter::once(("host", host.as_str())),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
    let (_, mut query) = instructions.into_parts();
    // The signature last, as AWS's signers put it.
    query.sort_by_key(|(name, _)| *name == "X-Amz-Signature");
    let mut signed = url;
    for (name, value) in query {
        signed.push_str(&format!("&{name}={}", utf8_percent_encode(&value, QUERY)));
    }
    let agent = format!("lineage/{}", env!("CARGO_PKG_VERSION"));
    signed.push_str(&format!(
        "&User-Agent={}",
        utf8_percent_encode(&agent, QUERY)
    ));
    let signed_at = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| failed(&e))?
        .as_secs();
    Ok(Token {
        value: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed),
        expires_at_ms: ((signed_at + LIFETIME.as_secs()) * 1000) as i64,
    })
}

/// The region of an MSK cluster from its bootstrap servers
/// (`b-1.name.abc123.c2.kafka.eu-west-1.amazonaws.com:9098`, serverless
/// `boot-x.c1.kafka-serverless.us-east-2.amazonaws.com`), else AWS_REGION.
pub fn region(servers: &str, aws_region: Option<&str>) -> Result<String, MskIamError> {
    let from_host = servers.split(',').find_map(|server| {
        let server = server.trim();
        let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = host.split('.').collect();
        match labels.as_slice() {
            [.., "kafka" | "kafka-serverless", region, "amazonaws", "com"] => {
                Some((*region).to_owned())
            }
            _ => None,
        }
    });
    from_host
        .or_else(|| aws_region.filter(|r| !r.is_empty()).map(str::to_owned))
        .ok_or_else(|| MskIamError::NoRegion {
            servers: servers.to_owned(),
        })
}

/// How long librdkafka is told a token lasts. Shorter than the URL's own
/// 15 minutes: object_store hands out credentials that have as little as
/// 5 minutes left, and a token is no good past its credentials. Signing is
/// local and cheap, so tokens are renewed every 4 minutes (librdkafka asks
/// at 80 %).
pub const REFRESH_AFTER: Duration = Duration::from_secs(300);

/// How long a token request may wait for credentials (STS for IRSA,
/// container or instance metadata): it runs on the thread that polls the
/// client, which has heartbeats and checkpoints to serve. librdkafka asks
/// again 10 s after a failure, and the last token stays valid meanwhile.
const CREDENTIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Signs tokens for one region; shared by every client of the process.
pub struct MskIam {
    region: String,
    credentials: AwsCredentialProvider,
    clock: fn() -> SystemTime,
    /// Credentials may need an HTTP call; the refresh callback is
    /// synchronous and may run anywhere.
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for MskIam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MskIam")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl MskIam {
    /// From the process's AWS credential chain.
    pub fn from_env(region: String) -> Result<Self, MskIamError> {
        let credentials =
            crate::store::credential_chain(&region).map_err(MskIamError::Credentials)?;
        Ok(Self::new(region, credentials, SystemTime::now))
    }

    pub fn new(
        region: String,
        credentials: AwsCredentialProvider,
        clock: fn() -> SystemTime,
    ) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("msk-iam")
            .build()
            .expect("a current-thread runtime builds");
        Self {
            region,
            credentials,
            clock,
            runtime,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// A fresh token, signed now.
    pub fn token(&self) -> Result<Token, MskIamError> {
        let fetch = async {
            tokio::time::timeout(CREDENTIAL_TIMEOUT, self.credentials.get_credential()).await
        };
        // On a thread of its own: the caller may be inside another runtime.
        let credential = std::thread::scope(|s| {
            s.spawn(|| self.runtime.block_on(fetch))
                .join()
                .expect("the credential fetch does not panic")
        })
        .map_err(|_| MskIamError::CredentialsTimedOut(CREDENTIAL_TIMEOUT))?
        .map_err(MskIamError::Credentials)?;
        sign_token(&self.region, &credential, (self.clock)())
    }

    /// The token as librdkafka takes it, renewed after [`REFRESH_AFTER`].
    fn oauth_token(&self) -> Result<OAuthToken, MskIamError> {
        let token = self.token()?;
        let now_ms = (self.clock)()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        tracing::debug!(region = %self.region, expires_at_ms = token.expires_at_ms, "msk iam: signed a token");
        Ok(OAuthToken {
            token: token.value,
            // librdkafka wants one; MSK takes the identity from the signature.
            principal_name: "lineage".into(),
            lifetime_ms: token
                .expires_at_ms
                .min(now_ms + REFRESH_AFTER.as_millis() as i64),
        })
    }
}

/// One librdkafka client's side of the refresh: what it was handed, and
/// why it was last refused.
#[derive(Default)]
pub struct ClientAuth {
    msk_iam: Option<Arc<MskIam>>,
    handed: AtomicU64,
    failure: Mutex<Option<MskIamError>>,
}

impl ClientAuth {
    pub fn new(msk_iam: Option<Arc<MskIam>>) -> Self {
        Self {
            msk_iam,
            ..Self::default()
        }
    }

    pub fn msk_iam(&self) -> Option<&MskIam> {
        self.msk_iam.as_deref()
    }

    /// How many tokens this client has been handed.
    pub fn handed(&self) -> u64 {
        self.handed.load(Ordering::Relaxed)
    }

    /// Why the last request failed, if it did and nobody took it since.
    pub fn take_failure(&self) -> Option<MskIamError> {
        self.failure.lock().expect("not poisoned").take()
    }

    /// What the client's refresh callback answers.
    pub fn oauth_token(&self) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let Some(iam) = &self.msk_iam else {
            return Err(format!(
                "no token to give: KAFKA_SASL_MECHANISM={MECHANISM} signs them; for an OIDC provider set sasl.oauthbearer.method=oidc in KAFKA_PROPERTIES"
            )
            .into());
        };
        match iam.oauth_token() {
            Ok(token) => {
                self.handed.fetch_add(1, Ordering::Relaxed);
                *self.failure.lock().expect("not poisoned") = None;
                Ok(token)
            }
            Err(e) => {
                let text = crate::error::render(&e);
                tracing::warn!(error = %text, "msk iam: no token (librdkafka asks again)");
                *self.failure.lock().expect("not poisoned") = Some(e);
                Err(text.into())
            }
        }
    }

    /// Serves a new client's refresh until it holds a token: librdkafka
    /// asks inside `poll`, and nothing reaches the cluster before it has
    /// one. Returns at once without MSK IAM.
    pub fn await_first_token(&self, mut poll: impl FnMut(Duration)) -> Result<(), MskIamError> {
        if self.msk_iam.is_none() {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + FIRST_TOKEN;
        while self.handed() == 0 {
            if std::time::Instant::now() >= deadline {
                return Err(MskIamError::NeverAsked(FIRST_TOKEN));
            }
            poll(Duration::from_millis(100));
            if let Some(failure) = self.take_failure() {
                return Err(failure);
            }
        }
        Ok(())
    }
}

/// How long a new client may take to get its first token.
const FIRST_TOKEN: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_an_msk_hostname_first() {
        let msk = "b-1.events.abc123.c2.kafka.eu-west-1.amazonaws.com:9098,b-2.events.abc123.c2.kafka.eu-west-1.amazonaws.com:9098";
        assert_eq!(region(msk, Some("us-east-1")).unwrap(), "eu-west-1");
        let serverless = "boot-abc.c1.kafka-serverless.us-east-2.amazonaws.com:9098";
        assert_eq!(region(serverless, None).unwrap(), "us-east-2");
        // A cluster named kafka, a fully qualified name, capitals.
        let named = "B-1.Kafka.abc123.c2.KAFKA.ca-central-1.amazonaws.com.:9098";
        assert_eq!(region(named, None).unwrap(), "ca-central-1");
        assert_eq!(
            region("10.0.0.7:9098", Some("ap-south-1")).unwrap(),
            "ap-south-1"
        );
        assert!(matches!(
            region("broker:9092", None),
            Err(MskIamError::NoRegion { .. })
        ));
        assert!(matches!(
            region("kafka.example.com:9092", Some("")),
            Err(MskIamError::NoRegion { .. })
        ));
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let credential = AwsCredential {
            key_id: "AKIDEXAMPLE".into(),
            secret_key: "secret".into(),
            token: Some("session-token-value".into()),
        };
        let token = sign_token(
            "us-east-1",
            &credential,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
        .unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains(&token.value), "{shown}");
        assert_eq!(token.expires_at_ms, (1_800_000_000 + 900) * 1000);
    }
}
