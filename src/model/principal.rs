//! Principal mapping: which principal of the target a source principal's Lake Formation grant
//! goes to.
//!
//! The promise (issue 12): a grant is never made to a broader principal than the source had. A
//! source principal that no rule maps is *unmapped*: it is never granted, but reported and parked
//! so it can be replayed once a mapping exists. Same-account targets without rules use
//! [`PrincipalMap::identity`].
//!
//! The rules of one target, in the order they are tried:
//! 1. `map`: an explicit source principal → target principal. It wins over every other rule, and
//!    is the only way to map account-wide principals (an account id, `<account>:IAMPrincipals`,
//!    `arn:aws:iam::<account>:root`), organizations and OUs. An entry maps a principal only to one
//!    of its own kind (a role to a role, an OU to an OU), so a rule can never widen a grant.
//! 2. `account_map`: account-id substitution in IAM role and user ARNs
//!    (`arn:aws:iam::111111111111:role/x` → `arn:aws:iam::222222222222:role/x`), keeping the
//!    partition, path and name.
//! 3. `saml_providers`: SAML principals (`arn:aws:iam::<account>:saml-provider/<idp>:user/<name>`,
//!    `...:group/<name>`) keep their user or group and move to the target's identity provider.
//! 4. `keep_identity_center`: IAM Identity Center users and groups
//!    (`arn:aws:identitystore:::user/<id>`) keep their id: right when the target account shares
//!    the source's Identity Center instance (one organization); otherwise they need `map`.
//! 5. `keep_iam_allowed_principals`: the `IAMAllowedPrincipals` group (IAM-only access, Lake
//!    Formation's compatibility default) is granted in the target too; off by default, because in
//!    a target that uses Lake Formation permissions it opens the resource to all of IAM.
//!
//! Whatever the rules, two source principals never map to one target principal (it would receive
//! both grants): a rule whose result is some other principal's `map` destination leaves the
//! principal unmapped, and validation refuses a `map`, `account_map` or `saml_providers` that
//! sends two sources to one destination.

use std::collections::BTreeMap;

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

/// The shape of a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalKind {
    IamRole,
    IamUser,
    SamlUser,
    SamlGroup,
    IdentityCenterUser,
    IdentityCenterGroup,
    /// `arn:aws:iam::<account>:root`: the whole account.
    AccountRoot,
    /// A bare account id: a grant to another (external) account.
    Account,
    /// `<account>:IAMPrincipals` (ALLIAMPrincipals): every IAM principal of an account.
    AllIamPrincipals,
    OrganizationalUnit,
    Organization,
    /// `IAMAllowedPrincipals`: IAM-only access control for everyone IAM allows.
    IamAllowedPrincipals,
    /// Anything else: wildcards, and identifiers lakelog does not recognise.
    Other,
}

impl PrincipalKind {
    /// Whether it stands for more than one named identity or group: an account, an organization
    /// or OU, all IAM principals, or anything lakelog cannot tell apart (wildcards).
    pub fn is_broad(self) -> bool {
        use PrincipalKind::*;
        matches!(
            self,
            AccountRoot | Account | AllIamPrincipals | OrganizationalUnit | Organization | IamAllowedPrincipals | Other
        )
    }

    /// In words, for reasons and problems.
    pub fn describe(self) -> &'static str {
        use PrincipalKind::*;
        match self {
            IamRole => "an IAM role",
            IamUser => "an IAM user",
            SamlUser => "a SAML user",
            SamlGroup => "a SAML group",
            IdentityCenterUser => "an IAM Identity Center user",
            IdentityCenterGroup => "an IAM Identity Center group",
            AccountRoot => "a whole account (root)",
            Account => "a whole (external) account",
            AllIamPrincipals => "every IAM principal of an account (ALLIAMPrincipals)",
            OrganizationalUnit => "an organizational unit",
            Organization => "an organization",
            IamAllowedPrincipals => "the IAMAllowedPrincipals group",
            Other => "not a principal lakelog recognises (or a wildcard)",
        }
    }
}

/// A principal taken apart: its kind, and for ARNs the parts rules rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub kind: PrincipalKind,
    /// The ARN partition (`aws`, `aws-cn`, ...), for ARNs.
    pub partition: &'a str,
    /// The account the principal belongs to, when it names one.
    pub account: Option<&'a str>,
    /// What follows the account in an IAM ARN (`role/path/name`, `saml-provider/idp:user/x`).
    pub resource: &'a str,
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A name after `role/`, `user/`, `group/` ...: not empty, no wildcard.
fn is_name(s: &str) -> bool {
    !s.is_empty() && !s.ends_with('/')
}

/// Takes a principal apart. Anything with a wildcard is [`PrincipalKind::Other`].
pub fn parse(principal: &str) -> Parsed<'_> {
    let other = Parsed { kind: PrincipalKind::Other, partition: "", account: None, resource: "" };
    let of = |kind, account| Parsed { kind, partition: "", account, resource: "" };
    if principal.contains('*') || principal.contains('?') {
        return other;
    }
    if principal == "IAMAllowedPrincipals" {
        return of(PrincipalKind::IamAllowedPrincipals, None);
    }
    if is_account(principal) {
        return of(PrincipalKind::Account, Some(principal));
    }
    if let Some(account) = principal.strip_suffix(":IAMPrincipals").filter(|a| is_account(a)) {
        return of(PrincipalKind::AllIamPrincipals, Some(account));
    }
    let mut parts = principal.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return other;
    };
    if partition.is_empty() || !region.is_empty() {
        return other;
    }
    let arn = |kind, account| Parsed { kind, partition, account, resource };
    match service {
        "iam" if is_account(account) => {
            if resource == "root" {
                return arn(PrincipalKind::AccountRoot, Some(account));
            }
            if resource.strip_prefix("role/").is_some_and(is_name) {
                return arn(PrincipalKind::IamRole, Some(account));
            }
            if resource.strip_prefix("user/").is_some_and(is_name) {
                return arn(PrincipalKind::IamUser, Some(account));
            }
            let saml = resource.strip_prefix("saml-provider/").and_then(|r| r.split_once(':'));
            match saml {
                Some((idp, who)) if is_name(idp) && !idp.contains('/') => {
                    if who.strip_prefix("user/").is_some_and(is_name) {
                        arn(PrincipalKind::SamlUser, Some(account))
                    } else if who.strip_prefix("group/").is_some_and(is_name) {
                        arn(PrincipalKind::SamlGroup, Some(account))
                    } else {
                        other
                    }
                }
                _ => other,
            }
        }
        "identitystore" if account.is_empty() => {
            if resource.strip_prefix("user/").is_some_and(is_name) {
                arn(PrincipalKind::IdentityCenterUser, None)
            } else if resource.strip_prefix("group/").is_some_and(is_name) {
                arn(PrincipalKind::IdentityCenterGroup, None)
            } else {
                other
            }
        }
        "organizations" if is_account(account) => {
            let segments: Vec<&str> = resource.split('/').collect();
            match segments.as_slice() {
                ["organization", org] if org.starts_with("o-") => arn(PrincipalKind::Organization, Some(account)),
                ["ou", org, ou] if org.starts_with("o-") && ou.starts_with("ou-") => {
                    arn(PrincipalKind::OrganizationalUnit, Some(account))
                }
                _ => other,
            }
        }
        _ => other,
    }
}

/// `arn:<partition>:iam::<account>:saml-provider/<name>`, the identity provider of a SAML
/// principal, and what follows it (`user/x`, `group/x`).
fn saml_provider(principal: &str) -> Option<(&str, &str)> {
    let at = principal.find(":saml-provider/")?;
    let colon = principal[at + 1..].find(':')? + at + 1;
    Some((&principal[..colon], &principal[colon + 1..]))
}

/// Whether `arn` is exactly a SAML identity provider's ARN.
pub fn is_saml_provider(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("arn"), Some(p), Some("iam"), Some(""), Some(a), Some(r))
            if !p.is_empty() && is_account(a) && r.strip_prefix("saml-provider/").is_some_and(|n| is_name(n) && !n.contains(['/', ':', '*']))
    )
}

/// The mapping rules of one target, as configured (`targets[].principals`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Source account → target account, for IAM role and user ARNs.
    pub account_map: BTreeMap<String, String>,
    /// Source principal → target principal, exactly; wins over every other rule.
    pub map: BTreeMap<String, String>,
    /// Source SAML identity provider ARN → the target's, for SAML users and groups.
    pub saml_providers: BTreeMap<String, String>,
    /// Identity Center users and groups keep their id (the target shares the instance).
    pub keep_identity_center: bool,
    /// `IAMAllowedPrincipals` is granted in the target too.
    pub keep_iam_allowed_principals: bool,
}

/// A rule that cannot be used: where (`map`, `account_map`, ...) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// The key under the target's `principals`: `account_map`, `map`, `saml_providers`.
    pub key: String,
    pub message: String,
}

impl Rules {
    /// Everything wrong with the rules, all at once: entries that are not what their key holds,
    /// `map` entries that change a principal's kind, and two sources sent to one destination.
    pub fn problems(&self) -> Vec<RuleProblem> {
        let mut out = Vec::new();
        let mut add = |key: &str, message: String| out.push(RuleProblem { key: key.to_string(), message });
        for (from, to) in &self.account_map {
            for id in [from, to] {
                if !is_account(id) {
                    add("account_map", format!("`{id}` is not an account id; use 12 digits, quoted in YAML"));
                }
            }
        }
        for (from, to) in &self.saml_providers {
            for arn in [from, to] {
                if !is_saml_provider(arn) {
                    add(
                        "saml_providers",
                        format!("`{arn}` is not a SAML provider ARN (arn:aws:iam::<account>:saml-provider/<name>)"),
                    );
                }
            }
        }
        for (from, to) in &self.map {
            let (source, target) = (parse(from).kind, parse(to).kind);
            if source == PrincipalKind::Other {
                add("map", format!("`{from}`: {}; only Lake Formation principals can be mapped", source.describe()));
            } else if source != target {
                add(
                    "map",
                    format!(
                        "`{from}` is {} but `{to}` is {}: a principal maps only to one of its own kind, so no grant widens",
                        source.describe(),
                        target.describe()
                    ),
                );
            }
        }
        for (key, rules) in
            [("account_map", &self.account_map), ("map", &self.map), ("saml_providers", &self.saml_providers)]
        {
            let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
            for (from, to) in rules {
                if let Some(first) = seen.insert(to, from) {
                    add(
                        key,
                        format!(
                            "`{first}` and `{from}` both map to `{to}`, which would receive the grants of both; map each to its own"
                        ),
                    );
                }
            }
        }
        out
    }
}

/// The mapping rules of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalMap {
    /// True for a same-account target without rules: every principal maps to itself.
    identity: bool,
    rules: Rules,
    /// `map` destination → its source: a rule's result that is one of these, for another
    /// source, would merge two principals' grants.
    claimed: BTreeMap<String, String>,
    /// Where the rules sit in the config, for reasons (`targets[dr].principals`).
    at: String,
}

impl Default for PrincipalMap {
    /// No rules: every principal is unmapped.
    fn default() -> Self {
        PrincipalMap { identity: false, rules: Rules::default(), claimed: BTreeMap::new(), at: "principals".into() }
    }
}

impl PrincipalMap {
    /// Every principal maps to itself: a target in the source's own account.
    pub fn identity() -> PrincipalMap {
        PrincipalMap { identity: true, ..PrincipalMap::default() }
    }

    /// The map of `rules`, which reasons name as `at` (`targets[dr].principals`); the rules'
    /// problems when they cannot be used (see [`Rules::problems`]).
    pub fn new(rules: Rules, at: &str) -> Result<PrincipalMap, Vec<RuleProblem>> {
        let problems = rules.problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        let claimed = rules.map.iter().map(|(from, to)| (to.clone(), from.clone())).collect();
        Ok(PrincipalMap { identity: false, rules, claimed, at: at.to_string() })
    }

    /// The map of one target: its rules when it has some, else identity for a target in the
    /// source's account and no mapping at all (everything unmapped) for one in another account.
    pub fn for_target(rules: Option<Rules>, same_account: bool, at: &str) -> Result<PrincipalMap, Vec<RuleProblem>> {
        match rules {
            None if same_account => Ok(PrincipalMap::identity()),
            rules => PrincipalMap::new(rules.unwrap_or_default(), at),
        }
    }

    /// The target principal for `source`.
    pub fn map(&self, source: &str) -> Mapped {
        if self.identity {
            return Mapped::To(source.to_string());
        }
        if let Some(to) = self.rules.map.get(source) {
            return Mapped::To(to.clone());
        }
        let candidate = match self.by_rule(source) {
            Ok(c) => c,
            Err(reason) => return Mapped::Unmapped { reason },
        };
        match self.claimed.get(&candidate) {
            Some(other) => Mapped::Unmapped {
                reason: format!(
                    "{source} would map to {candidate}, which {at}.map already gives the grants of {other}; \
                     add {source} to {at}.map with a principal of its own",
                    at = self.at
                ),
            },
            None => Mapped::To(candidate),
        }
    }

    /// The source principal whose grants this map sends to `target`: the inverse of
    /// [`PrincipalMap::map`] (`None`: no source principal maps to it). No two sources map to one
    /// target (see the module doc), so there is at most one; each candidate the rules could have
    /// come from is mapped forward to check it.
    pub fn source_of(&self, target: &str) -> Option<String> {
        if self.identity {
            return Some(target.to_string());
        }
        let p = parse(target);
        let mut candidates: Vec<String> = self.claimed.get(target).cloned().into_iter().collect();
        match p.kind {
            PrincipalKind::IamRole | PrincipalKind::IamUser => {
                let account = p.account.unwrap_or_default();
                let from = self.rules.account_map.iter().filter(|(_, to)| to.as_str() == account);
                candidates.extend(from.map(|(from, _)| format!("arn:{}:iam::{from}:{}", p.partition, p.resource)));
            }
            PrincipalKind::SamlUser | PrincipalKind::SamlGroup => {
                if let Some((idp, who)) = saml_provider(target) {
                    let from = self.rules.saml_providers.iter().filter(|(_, to)| to.as_str() == idp);
                    candidates.extend(from.map(|(from, _)| format!("{from}:{who}")));
                }
            }
            // The rules that keep a principal as it is (Identity Center, IAMAllowedPrincipals).
            _ => candidates.push(target.to_string()),
        }
        let wanted = Mapped::To(target.to_string());
        candidates.into_iter().find(|c| self.map(c) == wanted)
    }

    /// What the rules after `map` make of `source`, or why none applies.
    fn by_rule(&self, source: &str) -> Result<String, String> {
        let p = parse(source);
        let at = &self.at;
        let kind = p.kind.describe();
        let or_map = format!("or add it to {at}.map");
        match p.kind {
            PrincipalKind::IamRole | PrincipalKind::IamUser => {
                let account = p.account.unwrap_or_default();
                match self.rules.account_map.get(account) {
                    Some(to) => Ok(format!("arn:{}:iam::{to}:{}", p.partition, p.resource)),
                    None => Err(format!(
                        "no principal mapping for {source} ({kind}): its account {account} is not in {at}.account_map; \
                         add \"{account}\": <target account> there, {or_map}"
                    )),
                }
            }
            PrincipalKind::SamlUser | PrincipalKind::SamlGroup => {
                let (idp, who) = saml_provider(source).unwrap_or((source, ""));
                match self.rules.saml_providers.get(idp) {
                    Some(to) => Ok(format!("{to}:{who}")),
                    None => Err(format!(
                        "no principal mapping for {source} ({kind}): its identity provider {idp} is not in \
                         {at}.saml_providers; add it there with the target's provider, {or_map}"
                    )),
                }
            }
            PrincipalKind::IdentityCenterUser | PrincipalKind::IdentityCenterGroup => {
                if self.rules.keep_identity_center {
                    Ok(source.to_string())
                } else {
                    Err(format!(
                        "no principal mapping for {source} ({kind}): set {at}.keep_identity_center: true if the \
                         target account uses the source's Identity Center instance, {or_map}"
                    ))
                }
            }
            PrincipalKind::IamAllowedPrincipals => {
                if self.rules.keep_iam_allowed_principals {
                    Ok(source.to_string())
                } else {
                    Err(format!(
                        "IAMAllowedPrincipals is not granted in this target: set {at}.keep_iam_allowed_principals: true \
                         to grant it (every IAM principal the target's IAM policies allow gets access), {or_map}"
                    ))
                }
            }
            PrincipalKind::AccountRoot
            | PrincipalKind::Account
            | PrincipalKind::AllIamPrincipals
            | PrincipalKind::OrganizationalUnit
            | PrincipalKind::Organization => Err(format!(
                "no principal mapping for {source} ({kind}): lakelog maps account-wide and organization principals \
                 only through an explicit entry; add it to {at}.map"
            )),
            PrincipalKind::Other => {
                Err(format!("{source} is {kind}; lakelog never grants it in another account (no rule maps it)"))
            }
        }
    }
}

#[cfg(test)]
mod tests;
