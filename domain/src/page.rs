//! Cursor pagination (SPEC §6): `cursor` and `limit` in, `{items, next_cursor}` out.

use uuid::Uuid;

use crate::error::{Error, ErrorCode, Result};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// Where a page starts. Lists are ordered by id, and ids are UUIDv7, so the
/// order is the order of creation and stays stable while rows are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Uuid>,
    pub limit: u32,
}

impl PageRequest {
    /// `cursor` is the opaque string a previous page returned as `next_cursor`.
    pub fn parse(cursor: Option<&str>, limit: Option<u32>) -> Result<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::rule(
                ErrorCode::InvalidQuery,
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(Uuid::try_parse(c).map_err(|_| {
                Error::rule(
                    ErrorCode::InvalidQuery,
                    "cursor is not one this API returned",
                )
            })?),
        };
        Ok(Self { after, limit })
    }

    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> u64 {
        u64::from(self.limit) + 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `request.fetch()` rows ordered by `id`.
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest, id: impl Fn(&T) -> Uuid) -> Self {
        let more = rows.len() > request.limit as usize;
        rows.truncate(request.limit as usize);
        let next_cursor = if more {
            rows.last().map(|row| id(row).to_string())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors() {
        assert!(PageRequest::parse(None, Some(0)).is_err());
        assert!(PageRequest::parse(None, Some(501)).is_err());
        assert!(PageRequest::parse(Some("nonsense"), None).is_err());
        let p = PageRequest::parse(None, None).expect("defaults");
        assert_eq!((p.after, p.limit), (None, DEFAULT_LIMIT));
    }

    #[test]
    fn a_page_knows_whether_more_follow() {
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let request = PageRequest {
            after: None,
            limit: 3,
        };
        let page = Page::from_rows(ids.clone(), &request, |id| *id);
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.next_cursor, Some(ids[2].to_string()));
        let last = Page::from_rows(ids[..3].to_vec(), &request, |id| *id);
        assert_eq!(last.next_cursor, None);
    }
}
