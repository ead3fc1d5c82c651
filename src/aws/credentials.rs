//! A target's own credentials: STS AssumeRole (with the target's external id and session name)
//! from the default credential chain, through the target's STS endpoint.
//!
//! The SDK's `AssumeRoleProvider` makes the call; every client built with these credentials
//! caches them in its identity cache and asks again shortly before they expire, so a long
//! `lakelog run` keeps working past the session duration. The provider is wrapped so that its
//! `Debug` (which the SDK's own would fill with the request, external id included) names the role
//! only: the external id never reaches a log or an error message.

use std::fmt;

use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};

use super::client::Endpoint;
use crate::config::{AssumeRoleConfig, Service};

/// Attempts of the AssumeRole call itself: credentials are fetched inside another call, which
/// lakelog's retry policy cannot see, so the SDK retries this one.
const ASSUME_ROLE_ATTEMPTS: u32 = 3;

/// The credentials of one target's role.
pub struct TargetRole {
    role_arn: String,
    session_name: String,
    provider: AssumeRoleProvider,
}

impl fmt::Debug for TargetRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetRole")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .finish_non_exhaustive()
    }
}

impl ProvideCredentials for TargetRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.provider.provide_credentials()
    }
}

impl TargetRole {
    /// Credentials for `role`, assumed from the default credential chain through `base`'s STS
    /// endpoint and Region. Sends no request until a client needs credentials.
    pub async fn provider(base: &Endpoint, target: &str, role: &AssumeRoleConfig) -> SharedCredentialsProvider {
        let mut sts = base.clone();
        sts.max_attempts = ASSUME_ROLE_ATTEMPTS;
        let conf = sts.sdk_config(Service::Sts).await;
        let session_name = role.session_name(target);
        let mut builder = AssumeRoleProvider::builder(&role.role_arn)
            .session_name(&session_name)
            .session_length(role.duration())
            .configure(&conf);
        if let Some(id) = &role.external_id {
            builder = builder.external_id(id.expose());
        }
        SharedCredentialsProvider::new(TargetRole {
            role_arn: role.role_arn.clone(),
            session_name,
            provider: builder.build().await,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[tokio::test]
    async fn the_debug_form_names_the_role_and_never_the_external_id() {
        let role = AssumeRoleConfig {
            role_arn: "arn:aws:iam::222222222222:role/lakelog-target".into(),
            external_id: Some(Secret::new("s3cr3t-external-id")),
            session_name: None,
            duration: "1h".into(),
        };
        let endpoint = Endpoint::new("us-west-2", Some("http://127.0.0.1:9"));
        let provider = TargetRole::provider(&endpoint, "dr", &role).await;
        let text = format!("{provider:?} {role:?}");
        assert!(text.contains("lakelog-target") && text.contains("lakelog-dr"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        let conf = endpoint.with_credentials(provider).sdk_config(Service::Glue).await;
        assert!(!format!("{conf:?}").contains("s3cr3t"));
    }
}
