//! Principal mapping: which principal of the target a source principal's Lake Formation grant
//! goes to.
//!
//! The promise (issue 12): a grant is never made to a broader principal than the source had. A
//! source principal that no rule maps is *unmapped*: it is never granted, but reported and parked
//! so it can be replayed once a mapping exists. Same-account targets use [`PrincipalMap::identity`].
//!
//! This file is the interface the applier codes against; the mapping rules (account-id
//! substitution in IAM ARNs, an explicit map, Identity Center and SAML principals, external
//! accounts and organizations) are built behind it.

/// A Lake Formation principal, as `DataLakePrincipalIdentifier` spells it (an IAM role or user
/// ARN, an account id, an organization or OU ARN, a SAML or Identity Center ARN, or the groups
/// `IAMAllowedPrincipals` / `ALLIAMPrincipals`).
pub type PrincipalId = String;

/// What a source principal maps to in one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// Grant to this target principal.
    To(PrincipalId),
    /// No rule maps it: never grant; report and park it with this reason.
    Unmapped { reason: String },
}

/// The mapping rules of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalMap {
    /// True for a same-account target: every principal maps to itself.
    identity: bool,
}

impl PrincipalMap {
    /// Every principal maps to itself: a target in the source's own account.
    pub fn identity() -> PrincipalMap {
        PrincipalMap { identity: true }
    }

    /// The target principal for `source`.
    pub fn map(&self, source: &str) -> Mapped {
        if self.identity {
            Mapped::To(source.to_string())
        } else {
            Mapped::Unmapped { reason: format!("no principal mapping rule matches {source}") }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_every_principal_to_itself_and_an_empty_map_maps_none() {
        let role = "arn:aws:iam::111111111111:role/analyst";
        assert_eq!(PrincipalMap::identity().map(role), Mapped::To(role.to_string()));
        assert!(matches!(PrincipalMap::default().map(role), Mapped::Unmapped { .. }));
    }
}
