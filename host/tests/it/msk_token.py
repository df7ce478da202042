"""AWS's own MSK IAM signer (PyPI aws-msk-iam-sasl-signer-python) under
fixed credentials and a fixed clock. Prints its token and expiry as JSON,
for msk_iam.rs to compare with Lineage's.

Usage: msk_token.py REGION ACCESS_KEY SECRET_KEY SESSION_TOKEN UNIX_SECONDS
(an empty SESSION_TOKEN means none)."""

import datetime
import json
import sys

import botocore.auth
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from botocore.credentials import CredentialProvider, Credentials

region, key, secret, session_token, at = sys.argv[1:6]
fixed = datetime.datetime.fromtimestamp(int(at), datetime.timezone.utc).replace(tzinfo=None)
# SigV4 takes its time from here and nowhere else.
botocore.auth.get_current_datetime = lambda remove_tzinfo=True: fixed


class Fixed(CredentialProvider):
    METHOD = "fixed"

    def load(self):
        return Credentials(key, secret, session_token or None)


token, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
    region, Fixed()
)
print(json.dumps({"token": token, "expiry_ms": expiry_ms}))
