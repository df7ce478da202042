//! Where the registry is and how to reach it.

use std::path::PathBuf;

/// `user:password` for basic auth, as Confluent's clients take it
/// (SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub user: String,
    password: String,
}

impl UserInfo {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Self {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err("expected user:password".to_owned()),
        }
    }

    pub(super) fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for UserInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:<redacted>", self.user)
    }
}

#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// SCHEMA_REGISTRY_URL, without a trailing slash.
    pub url: String,
    pub user_info: Option<UserInfo>,
    /// A PEM file of CAs to trust besides the system's
    /// (SCHEMA_REGISTRY_SSL_CA_LOCATION).
    pub ca_file: Option<PathBuf>,
    /// Where fetched schemas are kept across restarts; `None`: memory only.
    pub cache_dir: Option<PathBuf>,
}

impl RegistrySettings {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            user_info: None,
            ca_file: None,
            cache_dir: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_printed() {
        let info = UserInfo::parse("svc-lineage:s3cr3t:with:colons").unwrap();
        assert_eq!(info.user, "svc-lineage");
        assert_eq!(info.password(), "s3cr3t:with:colons");
        let mut settings = RegistrySettings::new("http://127.0.0.1:8081/");
        settings.user_info = Some(info);
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("svc-lineage:<redacted>"), "{shown}");
        assert_eq!(settings.url, "http://127.0.0.1:8081");
        assert!(UserInfo::parse("no-colon").is_err());
        assert!(UserInfo::parse(":pw").is_err());
    }
}
