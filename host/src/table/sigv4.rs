//! SigV4 for a REST catalog (ICEBERG_REST_SIGV4=glue|s3tables): the
//! Iceberg REST endpoints of AWS Glue and S3 Tables take only signed
//! requests, and iceberg-rust's REST client (0.10) cannot sign. So the
//! catalog is pointed at a proxy on 127.0.0.1 inside this process, which
//! signs each request with the AWS credential chain S3 uses and forwards
//! it over TLS.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use object_store::aws::{AwsCredential, AwsCredentialProvider};

use super::error::TableError;
use crate::setting;

/// Bodies the catalog sends are table metadata updates: small.
const MAX_BODY: usize = 64 << 20;

/// Headers the proxy must not pass on: its own hop, and what signing sets.
const HOP: [&str; 6] = [
    "host",
    "connection",
    "content-length",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
];

/// The headers that sign `method url` with `body` for `service`.
pub fn signed_headers(
    (method, url, body): (&str, &str, &[u8]),
    headers: &[(String, String)],
    (service, region): (&str, &str),
    credential: &AwsCredential,
    at: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = Credentials::new(
        &credential.key_id,
        &credential.secret_key,
        credential.token.clone(),
        None,
        "lineage",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let host = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = match host.port() {
        Some(port) => format!("{}:{port}", host.host_str().unwrap_or_default()),
        None => host.host_str().unwrap_or_default().to_string(),
    };
    let all = std::iter::once(("host", host.as_str()))
        .chain(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let request = SignableRequest::new(method, url, all, SignableBody::Bytes(body))
        .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let (added, _) = instructions.into_parts();
    Ok(added
        .into_iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect())
}

struct Proxy {
    target: String,
    service: String,
    region: String,
    credentials: AwsCredentialProvider,
    client: reqwest::Client,
}

/// Starts the proxy for `target` (the catalog's URI) and returns the URI
/// the catalog should use instead.
pub async fn start(
    target: &str,
    service: &str,
    region: Option<String>,
) -> Result<String, TableError> {
    let config = |problem: String| TableError::Config {
        setting: setting::ICEBERG_REST_SIGV4,
        problem,
    };
    let region = region.ok_or_else(|| config("signing needs AWS_REGION".into()))?;
    let parsed = url::Url::parse(target).map_err(|e| config(format!("{target}: {e}")))?;
    let origin = parsed.origin().ascii_serialization();
    let credentials = crate::store::credential_chain(&region)
        .map_err(|e| config(format!("no AWS credentials to sign with: {e}")))?;
    serve(&origin, parsed.path(), service, region, credentials).await
}

async fn serve(
    origin: &str,
    path: &str,
    service: &str,
    region: String,
    credentials: AwsCredentialProvider,
) -> Result<String, TableError> {
    let config = |problem: String| TableError::Config {
        setting: setting::ICEBERG_REST_SIGV4,
        problem,
    };
    let origin = origin.to_string();
    let proxy = Arc::new(Proxy {
        target: origin,
        service: service.to_string(),
        region,
        credentials,
        client: reqwest::Client::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| {
            config(format!(
                "cannot listen on 127.0.0.1 for the signing proxy: {e}"
            ))
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| config(format!("the signing proxy's address: {e}")))?;
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{address}{}", path.trim_end_matches('/')))
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    match relay(&proxy, request).await {
        Ok(response) => response,
        Err(problem) => (StatusCode::BAD_GATEWAY, problem).into_response(),
    }
}

async fn relay(proxy: &Proxy, request: Request) -> Result<Response, String> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| e.to_string())?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", proxy.target);
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(k, _)| !HOP.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let credential = proxy
        .credentials
        .get_credential()
        .await
        .map_err(|e| e.to_string())?;
    let signing = (proxy.service.as_str(), proxy.region.as_str());
    let method = parts.method.as_str();
    let added = signed_headers(
        (method, &url, &body),
        &headers,
        signing,
        &credential,
        SystemTime::now(),
    )?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = proxy.client.request(method, &url).body(body.to_vec());
    for (k, v) in headers.iter().chain(&added) {
        out = out.header(k, v);
    }
    let answer = out.send().await.map_err(|e| crate::error::render(&e))?;
    let status = StatusCode::from_u16(answer.status().as_u16()).map_err(|e| e.to_string())?;
    let mut response = Response::builder().status(status);
    for (k, v) in answer.headers() {
        if k.as_str() == "content-length" || k.as_str() == "transfer-encoding" {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_str().as_bytes()),
            HeaderValue::from_bytes(v.as_bytes()),
        ) {
            response = response.header(k, v);
        }
    }
    let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
    response.body(Body::from(bytes)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential() -> AwsCredential {
        AwsCredential {
            key_id: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            token: Some("session".into()),
        }
    }

    #[test]
    fn a_request_is_signed_for_the_service_and_region() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_764_633_600);
        let headers = [("content-type".to_string(), "application/json".to_string())];
        let request = (
            "POST",
            "https://glue.eu-west-1.amazonaws.com/iceberg/v1/catalogs/1/namespaces",
            &b"{}"[..],
        );
        let added =
            signed_headers(request, &headers, ("glue", "eu-west-1"), &credential(), at).unwrap();
        let get = |name: &str| {
            added
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let auth = get("authorization").expect("signed");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251202/eu-west-1/glue/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date"),
            "{auth}"
        );
        assert_eq!(get("x-amz-date").as_deref(), Some("20251202T000000Z"));
        assert_eq!(get("x-amz-security-token").as_deref(), Some("session"));
        // Another body, another signature.
        let other = signed_headers(
            ("POST", request.1, b"{ }"),
            &headers,
            ("glue", "eu-west-1"),
            &credential(),
            at,
        )
        .unwrap();
        assert_ne!(other, added);
    }

    #[tokio::test]
    async fn the_proxy_forwards_signed_requests_and_the_answers() {
        use std::sync::Mutex;
        // A stand-in catalog that records what it was sent.
        type Seen = Vec<(String, String, Option<String>)>;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let record = record.clone();
            async move {
                let auth = request
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string());
                let path = request.uri().to_string();
                let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                    .await
                    .unwrap();
                record.lock().unwrap().push((
                    path,
                    String::from_utf8(body.to_vec()).unwrap(),
                    auth,
                ));
                (
                    StatusCode::CONFLICT,
                    [("content-type", "application/json")],
                    "{\"error\":{}}",
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let credentials: AwsCredentialProvider =
            Arc::new(object_store::StaticCredentialProvider::new(credential()));
        let origin = format!("http://{address}");
        let base = serve(
            &origin,
            "/iceberg/",
            "s3tables",
            "us-east-1".into(),
            credentials,
        )
        .await
        .unwrap();
        assert!(
            base.starts_with("http://127.0.0.1:") && base.ends_with("/iceberg"),
            "{base}"
        );
        let answer = reqwest::Client::new()
            .post(format!("{base}/v1/namespaces?x=1"))
            .header("content-type", "application/json")
            .body("{\"namespace\":[\"a\"]}")
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status().as_u16(),
            409,
            "the catalog's status comes back"
        );
        assert_eq!(answer.text().await.unwrap(), "{\"error\":{}}");
        let seen = seen.lock().unwrap();
        let (path, body, auth) = &seen[0];
        assert_eq!(path, "/iceberg/v1/namespaces?x=1");
        assert_eq!(body, "{\"namespace\":[\"a\"]}");
        let auth = auth.as_deref().expect("signed");
        assert!(auth.contains("/us-east-1/s3tables/aws4_request"), "{auth}");
    }
}
