//! Include/exclude rules for databases and tables.
//!
//! A pattern is `DB_GLOB` (a whole database) or `DB_GLOB.TABLE_GLOB`, with shell globs
//! (`*`, `?`, `[abc]`). An empty include list includes everything. A database is kept when some
//! include pattern can match it and no whole-database exclude matches it; a table when its
//! database is kept, some include pattern matches it, and no exclude pattern matches it.

use glob::Pattern;

#[derive(Debug, Clone)]
struct Rule {
    database: Pattern,
    table: Option<Pattern>,
}

impl Rule {
    fn parse(text: &str) -> Result<Rule, String> {
        let (db, table) = match text.split_once('.') {
            Some((d, t)) => (d, Some(t)),
            None => (text, None),
        };
        if db.is_empty() || table.is_some_and(str::is_empty) {
            return Err(format!("`{text}` is not a pattern; write DB_GLOB or DB_GLOB.TABLE_GLOB"));
        }
        let compile = |p: &str| Pattern::new(p).map_err(|e| format!("`{text}` is not a valid glob: {e}"));
        Ok(Rule { database: compile(db)?, table: table.map(compile).transpose()? })
    }

    fn matches_table(&self, db: &str, table: &str) -> bool {
        self.database.matches(db) && self.table.as_ref().is_none_or(|t| t.matches(table))
    }
}

/// Compiled include/exclude rules.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<Rule>,
    exclude: Vec<Rule>,
}

impl Filter {
    /// Checks one pattern; the error names it and says how to write it.
    pub fn check_pattern(text: &str) -> Result<(), String> {
        Rule::parse(text).map(|_| ())
    }

    /// Compiles the rules (call after config validation, which reports bad patterns).
    pub fn new(include: &[String], exclude: &[String]) -> Result<Filter, String> {
        let compile = |list: &[String]| list.iter().map(|p| Rule::parse(p)).collect::<Result<Vec<_>, _>>();
        Ok(Filter { include: compile(include)?, exclude: compile(exclude)? })
    }

    pub fn allows_database(&self, db: &str) -> bool {
        let included = self.include.is_empty() || self.include.iter().any(|r| r.database.matches(db));
        let excluded = self.exclude.iter().any(|r| r.table.is_none() && r.database.matches(db));
        included && !excluded
    }

    pub fn allows_table(&self, db: &str, table: &str) -> bool {
        self.allows_database(db)
            && (self.include.is_empty() || self.include.iter().any(|r| r.matches_table(db, table)))
            && !self.exclude.iter().any(|r| r.matches_table(db, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(inc: &[&str], exc: &[&str]) -> Filter {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Filter::new(&s(inc), &s(exc)).expect("valid")
    }

    #[test]
    fn empty_filter_allows_all() {
        assert!(f(&[], &[]).allows_table("a", "b"));
    }

    #[test]
    fn include_table_keeps_its_database_only_for_that_table() {
        let f = f(&["sales.orders_*"], &[]);
        assert!(f.allows_database("sales"));
        assert!(f.allows_table("sales", "orders_2024"));
        assert!(!f.allows_table("sales", "customers"));
        assert!(!f.allows_database("web"));
    }

    #[test]
    fn exclude_wins() {
        let f = f(&["demo_*"], &["demo_hr", "demo_web.tmp_*"]);
        assert!(!f.allows_database("demo_hr"));
        assert!(f.allows_database("demo_web"));
        assert!(!f.allows_table("demo_web", "tmp_1"));
        assert!(f.allows_table("demo_web", "events"));
    }

    #[test]
    fn bad_patterns_are_named() {
        assert!(Filter::check_pattern("db.").unwrap_err().contains("db."));
        assert!(Filter::check_pattern("[").is_err());
    }
}
