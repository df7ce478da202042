//! The registry's REST API, as far as Lineage uses it: a schema by id, the
//! subjects and versions that hold it, and registering (for `generate`).

use std::time::Duration;

use serde::Deserialize;

use super::error::RegistryError;
use super::settings::RegistrySettings;

const ACCEPT: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// Confluent's error code for "no schema with this id".
const SCHEMA_NOT_FOUND: i64 = 40403;

/// A writer schema by id, as the registry answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Avro(String),
    /// 404 with error code 40403.
    Missing,
    /// A PROTOBUF or JSON schema: not something Avro can decode.
    OtherType(String),
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    settings: RegistrySettings,
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: i64,
}

#[derive(Deserialize)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i64,
}

#[derive(Deserialize)]
struct Registered {
    id: u32,
}

impl Client {
    pub fn new(settings: &RegistrySettings) -> Result<Self, RegistryError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|source| RegistryError::CaFile {
                setting: crate::setting::SCHEMA_REGISTRY_SSL_CA_LOCATION,
                path: path.clone(),
                source,
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RegistryError::Config {
                    setting: crate::setting::SCHEMA_REGISTRY_SSL_CA_LOCATION,
                    problem: format!("{}: not PEM certificates: {e}", path.display()),
                })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| RegistryError::Config {
            setting: crate::setting::SCHEMA_REGISTRY_URL,
            problem: format!("cannot build an HTTP client: {e}"),
        })?;
        Ok(Self {
            http,
            settings: settings.clone(),
        })
    }

    pub fn url(&self) -> &str {
        &self.settings.url
    }

    fn request(&self, method: reqwest::Method, path: &str) -> (String, reqwest::RequestBuilder) {
        let url = format!("{}{path}", self.settings.url);
        let mut request = self
            .http
            .request(method, &url)
            .header(reqwest::header::ACCEPT, ACCEPT);
        if let Some(info) = &self.settings.user_info {
            request = request.basic_auth(&info.user, Some(info.password()));
        }
        (url, request)
    }

    /// `GET /schemas/ids/{id}`.
    pub async fn schema(&self, id: u32) -> Result<Answer, RegistryError> {
        let (url, request) = self.request(reqwest::Method::GET, &format!("/schemas/ids/{id}"));
        let (status, body) = send(&url, request).await?;
        if status == 404 && error_code(&body) == Some(SCHEMA_NOT_FOUND) {
            return Ok(Answer::Missing);
        }
        let body: SchemaBody = ok_json(&url, status, &body)?;
        match body.schema_type.as_deref() {
            None | Some("AVRO") => Ok(Answer::Avro(body.schema)),
            Some(other) => Ok(Answer::OtherType(other.to_owned())),
        }
    }

    /// `GET /schemas/ids/{id}/versions`: which subject versions hold it;
    /// `None` where the registry has no schema with this id.
    pub async fn versions(&self, id: u32) -> Result<Option<Vec<SubjectVersion>>, RegistryError> {
        let (url, request) =
            self.request(reqwest::Method::GET, &format!("/schemas/ids/{id}/versions"));
        let (status, body) = send(&url, request).await?;
        if status == 404 && error_code(&body) == Some(SCHEMA_NOT_FOUND) {
            return Ok(None);
        }
        ok_json(&url, status, &body).map(Some)
    }

    /// `POST /subjects/{subject}/versions`: the schema's id, new or not.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let (url, request) = self.request(
            reqwest::Method::POST,
            &format!("/subjects/{subject}/versions"),
        );
        let body = serde_json::json!({ "schema": schema }).to_string();
        let request = request
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body);
        let (status, body) = send(&url, request).await?;
        ok_json::<Registered>(&url, status, &body).map(|r| r.id)
    }
}

async fn send(url: &str, request: reqwest::RequestBuilder) -> Result<(u16, String), RegistryError> {
    let unreachable = |e: reqwest::Error| {
        let mut detail = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            detail = format!("{detail}: {c}");
            cause = c.source();
        }
        RegistryError::Unreachable {
            url: url.to_owned(),
            detail,
        }
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(unreachable)?;
    Ok((status, body))
}

fn error_code(body: &str) -> Option<i64> {
    serde_json::from_str::<ErrorBody>(body)
        .ok()
        .map(|e| e.error_code)
}

fn ok_json<T: serde::de::DeserializeOwned>(
    url: &str,
    status: u16,
    body: &str,
) -> Result<T, RegistryError> {
    if !(200..300).contains(&status) {
        return Err(RegistryError::Status {
            url: url.to_owned(),
            status,
            body: body.chars().take(200).collect(),
        });
    }
    serde_json::from_str(body).map_err(|e| RegistryError::BadAnswer {
        url: url.to_owned(),
        detail: e.to_string(),
    })
}
