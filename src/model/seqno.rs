//! Kinesis sequence numbers, compared as the numbers they are.
//!
//! They are decimal strings of up to 129 digits (more than `u128` holds), and comparing them as
//! strings is wrong ("9" > "10"). Numeric order is: fewer digits first, then lexicographic.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SeqNo(String);

impl SeqNo {
    /// Parses a sequence number; `None` unless it is all decimal digits.
    pub fn parse(s: &str) -> Option<SeqNo> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = s.trim_start_matches('0');
        Some(SeqNo(if trimmed.is_empty() { "0".to_string() } else { trimmed.to_string() }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SeqNo {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SeqNo {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numeric_not_lexicographic() {
        let s = |x| SeqNo::parse(x).expect("digits");
        assert!(s("9") < s("10"));
        assert!(
            s("49590338271490256608559692538361571095921575989136588898")
                > s("49590338271490256608559692538361571095921575989136588897")
        );
        assert_eq!(s("007"), s("7"));
        assert!(SeqNo::parse("12a").is_none());
    }

    proptest! {
        #[test]
        fn order_matches_u128(a in any::<u64>(), b in any::<u64>()) {
            let (sa, sb) = (SeqNo::parse(&a.to_string()).unwrap(), SeqNo::parse(&b.to_string()).unwrap());
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
        }
    }
}
