//! Opaque page tokens for keyset pagination.
//!
//! Lists are ordered by id (UUIDv7: creation order), and a token holds the
//! last id returned plus a fingerprint of the filters: rows inserted while a
//! client pages never make it skip or repeat a row, and a token reused with
//! other filters is refused.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jalon_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Serialize, Deserialize)]
struct Token {
    a: String,
    f: String,
}

fn fingerprint(filter: &str) -> String {
    let digest = Sha256::digest(filter.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The token that continues after `after` (an id, a sequence number) under
/// `filter`.
pub fn encode(after: impl std::fmt::Display, filter: &str) -> String {
    let token = Token {
        a: after.to_string(),
        f: fingerprint(filter),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// The key to continue after, or `None` for the first page.
pub fn decode<K: std::str::FromStr>(token: &str, filter: &str, field: &str) -> Result<Option<K>> {
    if token.is_empty() {
        return Ok(None);
    }
    let token: Token = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| Error::invalid(field, "is not a page token this service issued"))?;
    if token.f != fingerprint(filter) {
        return Err(Error::invalid(
            field,
            "was issued for other filters: repeat the same filters, or start from the first page",
        ));
    }
    token
        .a
        .parse()
        .map(Some)
        .map_err(|_| Error::invalid(field, "is not a page token this service issued"))
}

/// A page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// Cuts the `size + 1` rows fetched into a page and the token to the next.
pub(crate) fn paginate<T, K: std::fmt::Display>(
    mut rows: Vec<T>,
    size: u32,
    filter: &str,
    id: impl Fn(&T) -> K,
) -> Page<T> {
    let size = size as usize;
    let next_page_token = if rows.len() > size {
        rows.truncate(size);
        rows.last()
            .map(|last| encode(id(last), filter))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Page {
        items: rows,
        next_page_token,
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn tokens_round_trip_under_the_same_filter() {
        let id = Uuid::now_v7();
        let token = encode(id, "role=ADMIN");
        assert_eq!(decode(&token, "role=ADMIN", "page_token"), Ok(Some(id)));
        assert_eq!(decode::<Uuid>("", "role=ADMIN", "page_token"), Ok(None));
        assert_eq!(decode(&encode(42_i64, ""), "", "t"), Ok(Some(42_i64)));
    }

    #[test]
    fn tokens_are_refused_under_other_filters_or_when_forged() {
        let token = encode(Uuid::now_v7(), "role=ADMIN");
        assert!(decode::<Uuid>(&token, "role=MEMBER", "page_token").is_err());
        assert!(decode::<Uuid>("garbage", "", "page_token").is_err());
        assert!(decode::<i64>(&token, "role=ADMIN", "page_token").is_err());
    }

    #[test]
    fn paginate_cuts_one_extra_row() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = paginate(ids.clone(), 2, "", |id| *id);
        assert_eq!(page.items, ids[..2]);
        assert_eq!(decode(&page.next_page_token, "", "t"), Ok(Some(ids[1])));
        let last = paginate(ids.clone(), 3, "", |id| *id);
        assert!(last.next_page_token.is_empty());
    }
}
