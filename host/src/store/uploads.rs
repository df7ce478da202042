//! Multipart uploads that a crash left open.
//!
//! S3 keeps an upload's parts, and bills them, until the upload is
//! completed or aborted, and object_store can only abort an upload whose id
//! it is given. A process killed after starting an upload and before its
//! caller learnt the id leaves one nobody knows. Recovery therefore asks the
//! store which uploads are open at a key (ListMultipartUploads, which
//! object_store does not wrap) and aborts them.

use std::time::Duration;

use http::{Method, Request, StatusCode};
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpClient, HttpRequestBody};
use object_store::path::Path;
use serde::Deserialize;

use crate::retry::{Backoff, retry_at_most};

/// Lists open multipart uploads in one bucket, signed with the store's own
/// credentials (static keys, web identity, instance profile alike).
#[derive(Debug, Clone)]
pub struct OpenUploads {
    pub(super) client: HttpClient,
    pub(super) credentials: AwsCredentialProvider,
    /// `https://bucket.s3.region.amazonaws.com`, or `endpoint/bucket` where
    /// requests are path-style.
    pub(super) bucket_endpoint: String,
    pub(super) region: String,
}

#[derive(Debug, Deserialize)]
struct ListResult {
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextKeyMarker", default)]
    next_key_marker: Option<String>,
    #[serde(rename = "NextUploadIdMarker", default)]
    next_upload_id_marker: Option<String>,
    #[serde(rename = "Upload", default)]
    uploads: Vec<Upload>,
}

#[derive(Debug, Deserialize)]
struct Upload {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "UploadId")]
    upload_id: String,
}

/// Only the error code of a failed request goes into messages: the body
/// may echo request details.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "Code", default)]
    code: String,
}

#[derive(Debug, thiserror::Error)]
#[error("listing multipart uploads at {path}: {detail}")]
struct ListError {
    path: String,
    detail: String,
}

impl OpenUploads {
    /// Ids of the uploads open at exactly `path`.
    pub async fn at(&self, path: &Path) -> object_store::Result<Vec<String>> {
        Ok(self
            .under(path)
            .await?
            .into_iter()
            .filter(|(key, _)| key == path.as_ref())
            .map(|(_, id)| id)
            .collect())
    }

    /// Keys and ids of the uploads open at keys starting with `prefix`.
    /// Each page is tried a few times: this request has no object_store
    /// retries under it.
    pub async fn under(&self, prefix: &Path) -> object_store::Result<Vec<(String, String)>> {
        let backoff = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let page = retry_at_most("list multipart uploads", backoff, 6, || {
                self.page(prefix.as_ref(), markers.as_ref())
            })
            .await?;
            found.extend(page.uploads.into_iter().map(|u| (u.key, u.upload_id)));
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            ) {
                (true, Some(k), Some(u)) => markers = Some((k, u)),
                _ => return Ok(found),
            }
        }
    }

    async fn page(
        &self,
        key: &str,
        markers: Option<&(String, String)>,
    ) -> object_store::Result<ListResult> {
        let fail = |detail: String| {
            Box::new(ListError {
                path: key.to_owned(),
                detail,
            })
        };
        let mut url = format!(
            "{}/?uploads=&prefix={}",
            self.bucket_endpoint.trim_end_matches('/'),
            encode(key)
        );
        if let Some((k, u)) = markers {
            url.push_str(&format!(
                "&key-marker={}&upload-id-marker={}",
                encode(k),
                encode(u)
            ));
        }
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .body(HttpRequestBody::empty())
            .map_err(|e| generic(fail(e.to_string())))?;
        let credential = self.credentials.get_credential().await?;
        AwsAuthorizer::new(&credential, "s3", &self.region).try_authorize(&mut request, None)?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| generic(fail(e.to_string())))?;
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| generic(fail(e.to_string())))?;
        if !status.is_success() {
            let code = quick_xml::de::from_reader::<_, ErrorBody>(&body[..])
                .map(|b| b.code)
                .unwrap_or_default();
            let source = fail(format!("HTTP {status} {code}"));
            return Err(match status {
                StatusCode::FORBIDDEN => object_store::Error::PermissionDenied {
                    path: key.to_owned(),
                    source,
                },
                StatusCode::UNAUTHORIZED => object_store::Error::Unauthenticated {
                    path: key.to_owned(),
                    source,
                },
                StatusCode::NOT_IMPLEMENTED => object_store::Error::NotSupported { source },
                _ => generic(source),
            });
        }
        quick_xml::de::from_reader(&body[..])
            .map_err(|e| generic(fail(format!("unreadable reply: {e}"))))
    }
}

fn generic(source: Box<ListError>) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source,
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters, as SigV4's
/// canonical query string does.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_for_the_canonical_query() {
        assert_eq!(
            encode("out/year=2026/part-0 1.parquet"),
            "out%2Fyear%3D2026%2Fpart-0%201.parquet"
        );
    }

    #[test]
    fn list_replies_parse() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>lineage</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>a/b</NextKeyMarker><NextUploadIdMarker>2</NextUploadIdMarker>
  <MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>a/b</Key><UploadId>1</UploadId><Initiated>2026-11-25T00:00:00.000Z</Initiated></Upload>
  <Upload><Key>a/b.x</Key><UploadId>2</UploadId></Upload>
</ListMultipartUploadsResult>"#;
        let page: ListResult = quick_xml::de::from_str(xml).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].upload_id, "1");
        assert_eq!(page.next_key_marker.as_deref(), Some("a/b"));
        let empty: ListResult = quick_xml::de::from_str(
            "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
        )
        .unwrap();
        assert!(empty.uploads.is_empty());
    }
}
