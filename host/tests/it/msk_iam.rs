//! MSK IAM tokens, compared offline with AWS's own signer (PyPI
//! aws-msk-iam-sasl-signer-python, run by msk_token.py) under the same
//! fixed credentials and clock: the same URL byte for byte, signature
//! included, and the same expiry. Only the User-Agent, which is not signed,
//! names the library that made it.

use std::process::Command;
use std::time::{Duration, SystemTime};

use base64::Engine;
use lineage::source::msk_iam::sign_token;
use object_store::aws::AwsCredential;

use crate::pipeline_support::{tool, tools_dir};
use crate::support::repo_root;

/// A token's URL, and its User-Agent, which is not signed and names the
/// library that made it.
fn decode(token: &str) -> (String, String) {
    assert!(!token.contains('='), "unpadded: {token}");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .unwrap_or_else(|e| panic!("base64url: {e}"));
    let url = String::from_utf8(bytes).unwrap();
    let (signed, agent) = url
        .rsplit_once("&User-Agent=")
        .unwrap_or_else(|| panic!("no User-Agent last in {url}"));
    (signed.to_owned(), agent.to_owned())
}

fn reference(region: &str, credential: &AwsCredential, at: u64) -> (String, i64) {
    let out = Command::new(tool(tools_dir().join("python/bin/python")))
        .arg(repo_root().join("host/tests/it/msk_token.py"))
        .args([
            region,
            &credential.key_id,
            &credential.secret_key,
            credential.token.as_deref().unwrap_or(""),
            &at.to_string(),
        ])
        .output()
        .expect("run msk_token.py");
    assert!(
        out.status.success(),
        "msk_token.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        doc["token"].as_str().unwrap().to_owned(),
        doc["expiry_ms"].as_i64().unwrap(),
    )
}

#[test]
fn tokens_match_aws_own_signer_under_fixed_credentials_and_clock() {
    let session = AwsCredential {
        key_id: "ASIAEXAMPLEKEYID".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        // A session token as IRSA's STS answer has them: '+', '/', '='.
        token: Some("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJH+MEUCIQ==".into()),
    };
    let static_keys = AwsCredential {
        key_id: "AKIDEXAMPLE".into(),
        secret_key: "secret/with+signs=".into(),
        token: None,
    };
    let cases = [
        ("eu-west-1", &session, 1_796_126_400),
        // A second before midnight: the date in the scope and the
        // timestamp must agree.
        ("us-east-1", &session, 1_796_169_599),
        ("ap-southeast-2", &static_keys, 1_767_225_600),
    ];
    for (region, credential, at) in cases {
        let ours = sign_token(
            region,
            credential,
            SystemTime::UNIX_EPOCH + Duration::from_secs(at),
        )
        .unwrap();
        let (theirs, their_expiry) = reference(region, credential, at);
        assert_eq!(ours.expires_at_ms, their_expiry, "{region}: expiry");
        let (ours, our_agent) = decode(&ours.value);
        let (theirs, their_agent) = decode(&theirs);
        assert!(our_agent.starts_with("lineage%2F"), "{our_agent}");
        assert!(
            their_agent.starts_with("aws-msk-iam-sasl-signer-python%2F"),
            "{their_agent}"
        );
        // Byte for byte: host, path, parameters, their order and escaping,
        // and the signature.
        assert_eq!(ours, theirs, "{region}");
        assert!(ours.contains("&X-Amz-Signature="), "{ours}");
        assert_eq!(
            ours.contains("&X-Amz-Security-Token="),
            credential.token.is_some()
        );
    }
}
