//! [`ReadRow`]: the few column reads the stores make, over SQLite's and PostgreSQL's rows, so a
//! record is decoded by one function whichever database it came from.

use futures::{Stream, TryStreamExt};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::StoreError;

/// The records of `rows`, each read as its row arrives: a list of thousands of environments
/// never holds every row beside every record.
pub(super) async fn records_as_read<R, T>(
    mut rows: impl Stream<Item = Result<R, sqlx::Error>> + Unpin,
    read: impl Fn(&R) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut records = Vec::new();
    while let Some(row) = rows.try_next().await? {
        records.push(read(&row)?);
    }
    Ok(records)
}

/// A result row, read by column name.
pub(super) trait ReadRow {
    /// A non-null text column.
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// A nullable text column.
    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// A non-null integer column.
    fn integer(&self, column: &str) -> Result<i64, sqlx::Error>;
    /// A nullable integer column.
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A yes/no column (0 or 1 on SQLite, a boolean on PostgreSQL).
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
}

impl ReadRow for SqliteRow {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn integer(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
        Ok(self.try_get::<i64, _>(column)? != 0)
    }
}

impl ReadRow for PgRow {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn integer(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
        self.try_get(column)
    }
}
