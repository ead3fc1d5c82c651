use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

const ROLE: &str = "arn:aws:iam::111111111111:role/team/analyst";

fn rules() -> Rules {
    Rules { account_map: [("111111111111".to_string(), "222222222222".to_string())].into(), ..Default::default() }
}

fn map_of(rules: Rules) -> PrincipalMap {
    PrincipalMap::new(rules, "targets[dr].principals").expect("valid rules")
}

fn to(s: &str) -> Mapped {
    Mapped::To(s.to_string())
}

fn reason(m: Mapped) -> String {
    match m {
        Mapped::Unmapped { reason } => reason,
        Mapped::To(t) => panic!("mapped to {t}"),
    }
}

#[test]
fn identity_maps_every_principal_to_itself_and_an_empty_map_maps_none() {
    assert_eq!(PrincipalMap::identity().map(ROLE), to(ROLE));
    assert!(matches!(PrincipalMap::default().map(ROLE), Mapped::Unmapped { .. }));
}

#[test]
fn every_shape_is_recognised() {
    use PrincipalKind::*;
    for (p, kind) in [
        (ROLE, IamRole),
        ("arn:aws-cn:iam::111111111111:user/bob", IamUser),
        ("arn:aws:iam::111111111111:saml-provider/Okta:user/alice@example.com", SamlUser),
        ("arn:aws:iam::111111111111:saml-provider/Okta:group/analysts", SamlGroup),
        ("arn:aws:identitystore:::user/9067b7a8-10e1-70d1", IdentityCenterUser),
        ("arn:aws:identitystore:::group/12345678-aaaa", IdentityCenterGroup),
        ("arn:aws:iam::111111111111:root", AccountRoot),
        ("111111111111", Account),
        ("111111111111:IAMPrincipals", AllIamPrincipals),
        ("arn:aws:organizations::111111111111:organization/o-abc123", Organization),
        ("arn:aws:organizations::111111111111:ou/o-abc123/ou-ab12-cdef", OrganizationalUnit),
        ("IAMAllowedPrincipals", IamAllowedPrincipals),
        ("arn:aws:iam::111111111111:role/*", Other),
        ("*", Other),
        ("arn:aws:iam::111111111111:role/", Other),
        ("arn:aws:iam:us-east-1:111111111111:role/x", Other),
        ("arn:aws:identitystore:::user/*", Other),
        ("11111111111", Other),
    ] {
        assert_eq!(parse(p).kind, kind, "{p}");
    }
}

#[test]
fn account_substitution_rewrites_iam_roles_and_users_and_keeps_path_and_partition() {
    let m = map_of(rules());
    assert_eq!(m.map(ROLE), to("arn:aws:iam::222222222222:role/team/analyst"));
    assert_eq!(m.map("arn:aws-us-gov:iam::111111111111:user/bob"), to("arn:aws-us-gov:iam::222222222222:user/bob"));
    let r = reason(m.map("arn:aws:iam::333333333333:role/x"));
    assert!(r.contains("arn:aws:iam::333333333333:role/x") && r.contains("targets[dr].principals.account_map"), "{r}");
}

#[test]
fn the_explicit_map_wins_and_a_rule_never_lands_on_its_destination_for_another_principal() {
    let mut r = rules();
    r.map.insert(ROLE.into(), "arn:aws:iam::222222222222:role/dr-analyst".into());
    r.map.insert("333333333333".into(), "444444444444".into());
    let m = map_of(r);
    assert_eq!(m.map(ROLE), to("arn:aws:iam::222222222222:role/dr-analyst"));
    assert_eq!(m.map("333333333333"), to("444444444444"));
    // Substitution would send this one to the destination the map gave ROLE.
    let r = reason(m.map("arn:aws:iam::111111111111:role/dr-analyst"));
    assert!(r.contains(ROLE) && r.contains("targets[dr].principals.map"), "{r}");
}

#[test]
fn saml_identity_center_and_iam_allowed_principals_need_their_own_rule() {
    let saml = "arn:aws:iam::111111111111:saml-provider/Okta:group/analysts";
    let ic = "arn:aws:identitystore:::user/9067b7a8";
    let m = map_of(rules());
    assert!(reason(m.map(saml)).contains("targets[dr].principals.saml_providers"));
    assert!(reason(m.map(ic)).contains("targets[dr].principals.keep_identity_center"));
    assert!(reason(m.map("IAMAllowedPrincipals")).contains("targets[dr].principals.keep_iam_allowed_principals"));

    let mut r = rules();
    r.saml_providers.insert(
        "arn:aws:iam::111111111111:saml-provider/Okta".into(),
        "arn:aws:iam::222222222222:saml-provider/OktaDR".into(),
    );
    r.keep_identity_center = true;
    r.keep_iam_allowed_principals = true;
    let m = map_of(r);
    assert_eq!(m.map(saml), to("arn:aws:iam::222222222222:saml-provider/OktaDR:group/analysts"));
    assert_eq!(m.map(ic), to(ic));
    assert_eq!(m.map("IAMAllowedPrincipals"), to("IAMAllowedPrincipals"));
}

#[test]
fn account_wide_and_organization_principals_map_only_through_the_explicit_map() {
    let m = map_of(rules());
    for p in [
        "111111111111",
        "111111111111:IAMPrincipals",
        "arn:aws:iam::111111111111:root",
        "arn:aws:organizations::111111111111:organization/o-abc123",
        "arn:aws:organizations::111111111111:ou/o-abc123/ou-ab12-cdef",
    ] {
        let r = reason(m.map(p));
        assert!(r.contains(p) && r.contains("targets[dr].principals.map"), "{r}");
    }
    assert!(reason(m.map("arn:aws:iam::111111111111:role/*")).contains("wildcard"));
}

#[test]
fn rules_that_widen_or_merge_principals_are_refused_with_their_key() {
    let mut r = Rules::default();
    r.map.insert(ROLE.into(), "222222222222:IAMPrincipals".into());
    r.map.insert("arn:aws:iam::111111111111:role/a".into(), "arn:aws:iam::222222222222:role/x".into());
    r.map.insert("arn:aws:iam::111111111111:role/b".into(), "arn:aws:iam::222222222222:role/x".into());
    r.map.insert("*".into(), "*".into());
    r.account_map.insert("111111111111".into(), "222222222222".into());
    r.account_map.insert("333333333333".into(), "222222222222".into());
    r.account_map.insert("4444".into(), "555555555555".into());
    r.saml_providers.insert("arn:aws:iam::111111111111:saml-provider/Okta:user/x".into(), "x".into());
    let problems = PrincipalMap::new(r, "p").expect_err("refused");
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["account_map", "saml_providers", "saml_providers", "map", "map", "account_map", "map"],
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.message.contains("own kind")));
    assert!(problems.iter().any(|p| p.message.contains("both map to `222222222222`")));
}

/// The no-widening property over one set of source principals: every mapped principal has the
/// source's kind (so never a broader one unless the source was exactly that kind), and maps back
/// to one source principal only.
fn no_widening(map: &dyn Fn(&str) -> Mapped, sources: &BTreeSet<String>) -> Result<(), String> {
    let mut back: BTreeMap<String, &str> = BTreeMap::new();
    for s in sources {
        let Mapped::To(t) = map(s) else { continue };
        let (from, into) = (parse(s).kind, parse(&t).kind);
        if into.is_broad() && into != from {
            return Err(format!("{s} ({from:?}) widened to {t} ({into:?})"));
        }
        if into != from {
            return Err(format!("{s} ({from:?}) changed kind: {t} ({into:?})"));
        }
        if let Some(other) = back.insert(t.clone(), s) {
            return Err(format!("{other} and {s} both map to {t}"));
        }
    }
    Ok(())
}

const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];

fn account() -> impl Strategy<Value = String> {
    prop::sample::select(ACCOUNTS.to_vec()).prop_map(str::to_string)
}

/// One principal of any shape (the same few accounts and names, so rules and sources collide).
fn principal() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["a", "b", "team/c"]);
    let idp = prop::sample::select(vec!["Okta", "Azure"]);
    let id = prop::sample::select(vec!["u-1", "u-2", "g-1"]);
    let part = prop::sample::select(vec!["aws", "aws-cn"]);
    prop_oneof![
        (part.clone(), account(), name.clone()).prop_map(|(p, a, n)| format!("arn:{p}:iam::{a}:role/{n}")),
        (part, account(), name.clone()).prop_map(|(p, a, n)| format!("arn:{p}:iam::{a}:user/{n}")),
        (account(), idp.clone(), name.clone())
            .prop_map(|(a, i, n)| format!("arn:aws:iam::{a}:saml-provider/{i}:user/{n}")),
        (account(), idp, name).prop_map(|(a, i, n)| format!("arn:aws:iam::{a}:saml-provider/{i}:group/{n}")),
        id.clone().prop_map(|i| format!("arn:aws:identitystore:::user/{i}")),
        id.prop_map(|i| format!("arn:aws:identitystore:::group/{i}")),
        account().prop_map(|a| format!("arn:aws:iam::{a}:root")),
        account(),
        account().prop_map(|a| format!("{a}:IAMPrincipals")),
        account().prop_map(|a| format!("arn:aws:organizations::{a}:organization/o-1")),
        account().prop_map(|a| format!("arn:aws:organizations::{a}:ou/o-1/ou-1")),
        Just("IAMAllowedPrincipals".to_string()),
        account().prop_map(|a| format!("arn:aws:iam::{a}:role/*")),
        Just("*".to_string()),
    ]
}

/// A rule set: random maps, their destinations made distinct (as validation demands), `map`
/// entries of any kinds (validation refuses the ones that change kind: those sets are skipped).
fn rule_set() -> impl Strategy<Value = Rules> {
    let distinct = |m: BTreeMap<String, String>| {
        let mut seen = BTreeSet::new();
        m.into_iter().filter(|(_, to)| seen.insert(to.clone())).collect::<BTreeMap<_, _>>()
    };
    let idp = || {
        (account(), prop::sample::select(vec!["Okta", "Azure"]))
            .prop_map(|(a, i)| format!("arn:aws:iam::{a}:saml-provider/{i}"))
    };
    (
        prop::collection::btree_map(account(), account(), 0..3).prop_map(distinct),
        prop::collection::btree_map(principal(), principal(), 0..4).prop_map(distinct),
        prop::collection::btree_map(idp(), idp(), 0..2).prop_map(distinct),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(account_map, map, saml_providers, keep_identity_center, keep_iam_allowed_principals)| {
            let same_kind =
                |f: &String, t: &String| parse(f).kind == parse(t).kind && parse(f).kind != PrincipalKind::Other;
            let map = map.into_iter().filter(|(f, t)| same_kind(f, t)).collect();
            Rules { account_map, map, saml_providers, keep_identity_center, keep_iam_allowed_principals }
        })
}

/// The sources a rule set is checked on: random ones, and every principal its rules name, so
/// that a rule's result meeting another's destination is tried.
fn sources_for(rules: &Rules, random: Vec<String>) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = random.into_iter().collect();
    out.extend(rules.map.keys().cloned());
    out.extend(rules.map.values().cloned());
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_rule_set_widens_a_grant_or_merges_two_principals(
        rules in rule_set(),
        random in prop::collection::vec(principal(), 1..24),
    ) {
        let sources = sources_for(&rules, random);
        let map = PrincipalMap::new(rules, "p").expect("the generated rules are valid");
        prop_assert_eq!(no_widening(&|s| map.map(s), &sources), Ok(()));
    }

    /// `source_of` inverts `map`: every target principal a source maps to leads back to that
    /// source, and whatever it returns maps forward to the principal asked about.
    #[test]
    fn source_of_inverts_map(
        rules in rule_set(),
        random in prop::collection::vec(principal(), 1..24),
        asked in prop::collection::vec(principal(), 1..8),
    ) {
        let sources = sources_for(&rules, random);
        let map = PrincipalMap::new(rules, "p").expect("the generated rules are valid");
        for s in &sources {
            if let Mapped::To(t) = map.map(s) {
                prop_assert_eq!(map.source_of(&t), Some(s.clone()), "{} -> {}", s, t);
            }
        }
        for t in &asked {
            if let Some(s) = map.source_of(t) {
                prop_assert_eq!(map.map(&s), Mapped::To(t.clone()), "{} <- {}", t, s);
            }
        }
    }

    /// Validation refuses every `map` entry that changes a principal's kind, however random.
    #[test]
    fn a_map_entry_that_changes_kind_is_refused(from in principal(), into in principal()) {
        let kinds = (parse(&from).kind, parse(&into).kind);
        let rules = Rules { map: [(from, into)].into(), ..Default::default() };
        let accepted = PrincipalMap::new(rules, "p").is_ok();
        prop_assert_eq!(accepted, kinds.0 == kinds.1 && kinds.0 != PrincipalKind::Other);
    }
}

/// The property catches a widening rule and a merging one: it is not vacuous.
#[test]
fn the_property_fails_on_rules_that_widen_or_merge() {
    let sources: BTreeSet<String> = [ROLE.to_string(), "arn:aws:iam::111111111111:role/b".to_string()].into();
    let widening = |s: &str| match parse(s).account {
        Some(a) => Mapped::To(format!("{a}:IAMPrincipals")),
        None => Mapped::Unmapped { reason: String::new() },
    };
    assert!(no_widening(&widening, &sources).unwrap_err().contains("widened"));
    let merging = |_: &str| Mapped::To("arn:aws:iam::222222222222:role/one".to_string());
    assert!(no_widening(&merging, &sources).unwrap_err().contains("both map to"));
}

#[test]
fn source_of_undoes_each_rule_and_finds_none_for_a_principal_no_rule_reaches() {
    let saml = "arn:aws:iam::111111111111:saml-provider/Okta";
    let rules = Rules {
        map: [(
            "arn:aws:iam::111111111111:role/admin".to_string(),
            "arn:aws:iam::222222222222:role/dr-admin".to_string(),
        )]
        .into(),
        saml_providers: [(saml.to_string(), "arn:aws:iam::222222222222:saml-provider/Okta".to_string())].into(),
        ..rules()
    };
    let map = map_of(rules);
    let back = |t: &str| map.source_of(t);
    assert_eq!(back("arn:aws:iam::222222222222:role/team/analyst"), Some(ROLE.to_string()));
    assert_eq!(back("arn:aws:iam::222222222222:role/dr-admin"), Some("arn:aws:iam::111111111111:role/admin".into()));
    assert_eq!(back("arn:aws:iam::222222222222:saml-provider/Okta:user/ann"), Some(format!("{saml}:user/ann")));
    // The role `map` sends elsewhere is nobody's target under its account-substituted name.
    assert_eq!(back("arn:aws:iam::222222222222:role/admin"), None);
    // A principal of the target's own (no rule reaches its account), and one kept off the target.
    assert_eq!(back("arn:aws:iam::333333333333:role/x"), None);
    assert_eq!(back("IAMAllowedPrincipals"), None);
    assert_eq!(PrincipalMap::identity().source_of(ROLE), Some(ROLE.to_string()));
}
