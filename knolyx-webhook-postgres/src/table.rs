//! Validated table names.

use std::fmt;

/// The default table: `knolyx_webhook_deliveries` (in the connection's `search_path`).
pub const DEFAULT_TABLE: &str = "knolyx_webhook_deliveries";

/// PostgreSQL's limit on an identifier's length, in bytes.
const MAX_IDENTIFIER: usize = 63;
const INDEX_SUFFIX: &str = "_expiry_idx";

/// A table name that is safe to put into SQL: `name` or `schema.name`, each part a lowercase
/// ASCII letter or `_` followed by lowercase letters, digits or `_`, at most 63 bytes.
///
/// Lowercase only, so that the name means the same table quoted (as this crate writes it)
/// and unquoted (as you may write it in your own SQL).
///
/// ```
/// use knolyx_webhook_postgres::TableName;
///
/// let table = TableName::parse("webhooks.knolyx_deliveries")?;
/// assert_eq!(table.to_string(), r#""webhooks"."knolyx_deliveries""#);
/// assert!(TableName::parse("deliveries; DROP TABLE users").is_err());
/// assert!(TableName::parse("Deliveries").is_err());
/// # Ok::<(), knolyx_webhook_postgres::InvalidTableName>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    schema: Option<String>,
    name: String,
}

impl TableName {
    /// Validates `text` as a table name, optionally schema-qualified.
    pub fn parse(text: &str) -> Result<Self, InvalidTableName> {
        let invalid = || InvalidTableName {
            name: text.to_owned(),
        };
        let mut parts = text.split('.');
        let (schema, name) = match (parts.next(), parts.next(), parts.next()) {
            (Some(name), None, None) => (None, name),
            (Some(schema), Some(name), None) => (Some(schema), name),
            _ => return Err(invalid()),
        };
        if !schema.is_none_or(is_identifier) || !is_identifier(name) {
            return Err(invalid());
        }
        Ok(Self {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// The schema, if the name is qualified.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The table's own name, unqualified.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The unqualified, quoted name of the expiry index (`"<name>_expiry_idx"`, the name
    /// shortened to stay within 63 bytes).
    pub(crate) fn index(&self) -> String {
        let keep = self.name.len().min(MAX_IDENTIFIER - INDEX_SUFFIX.len());
        format!("\"{}{INDEX_SUFFIX}\"", &self.name[..keep])
    }
}

fn is_identifier(part: &str) -> bool {
    let mut bytes = part.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && part.len() <= MAX_IDENTIFIER
}

impl Default for TableName {
    fn default() -> Self {
        Self {
            schema: None,
            name: DEFAULT_TABLE.to_owned(),
        }
    }
}

/// The quoted, possibly qualified name, as it appears in SQL: `"schema"."name"`.
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "\"{schema}\".")?;
        }
        write!(f, "\"{}\"", self.name)
    }
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableName({self})")
    }
}

impl std::str::FromStr for TableName {
    type Err = InvalidTableName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// A table name was refused: see [`TableName`] for what is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTableName {
    name: String,
}

impl InvalidTableName {
    /// The refused name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for InvalidTableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid table name {:?}: expected `name` or `schema.name`, each part lowercase \
             ASCII letters, digits and `_`, not starting with a digit, at most 63 bytes",
            self.name
        )
    }
}

impl std::error::Error for InvalidTableName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_qualified_names() {
        assert_eq!(TableName::parse("a").unwrap().to_string(), "\"a\"");
        assert_eq!(
            TableName::parse("_s1.t_2").unwrap().to_string(),
            "\"_s1\".\"t_2\""
        );
        assert_eq!(
            TableName::default().to_string(),
            "\"knolyx_webhook_deliveries\""
        );
        assert!(TableName::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a.b.c",
            "1a",
            "a-b",
            "a b",
            "A",
            "a\"b",
            "a;drop table x",
            "é",
            "a\0",
            &"a".repeat(64),
        ] {
            let err = TableName::parse(bad).unwrap_err();
            assert_eq!(err.name(), bad);
        }
    }

    #[test]
    fn index_names_stay_within_the_identifier_limit() {
        let long = TableName::parse(&"t".repeat(63)).unwrap();
        assert_eq!(long.index().len(), 63 + 2);
        assert_eq!(TableName::parse("s.d").unwrap().index(), "\"d_expiry_idx\"");
    }
}
