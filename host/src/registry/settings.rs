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
    /// Never fails: an error would echo the secret (clap prints a refused
    /// value). Text without a colon is a user with an empty password.
    pub fn parse(text: &str) -> Result<Self, std::convert::Infallible> {
        let (user, password) = text.split_once(':').unwrap_or((text, ""));
        Ok(Self {
            user: user.to_owned(),
            password: password.to_owned(),
        })
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
    /// Credentials written into the URL (`https://user:pw@host`) move to
    /// `user_info`, so that the URL, which errors and logs print, never
    /// holds them.
    pub fn new(url: &str) -> Self {
        let url = url.trim_end_matches('/');
        let (url, user_info) = match url.split_once("://") {
            Some((scheme, rest)) => {
                let authority = rest.split('/').next().unwrap_or(rest);
                match authority.rsplit_once('@') {
                    Some((info, host)) => (
                        format!("{scheme}://{host}{}", &rest[authority.len()..]),
                        UserInfo::parse(info).ok(),
                    ),
                    None => (url.to_owned(), None),
                }
            }
            None => (url.to_owned(), None),
        };
        Self {
            url,
            user_info,
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
        assert_eq!(UserInfo::parse("token-only").unwrap().password(), "");
        let inline = RegistrySettings::new("https://svc:pw%40x@registry.example:8081/prefix/");
        assert_eq!(inline.url, "https://registry.example:8081/prefix");
        assert_eq!(inline.user_info.as_ref().unwrap().user, "svc");
        assert!(!format!("{inline:?}").contains("pw%40x"));
    }
}
