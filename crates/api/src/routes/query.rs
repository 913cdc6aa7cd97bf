//! Strict query-string parsing: every parameter is checked by name, so a bad or unknown
//! one is a 400 that names it (serde's query errors do not say which field failed). An
//! empty value (`?state=`) is a 400 too, not "no filter": it is not a value the document
//! allows, and reading it as absent would silently widen a listing the client meant to
//! narrow (found by schemathesis).

use std::collections::HashMap;

use crate::error::ApiError;

pub(crate) struct Query(HashMap<String, String>);

impl Query {
    pub(crate) fn parse(raw: &str) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            if v.is_empty() {
                return Err(bad(&k, "has no value; leave the parameter out instead"));
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(bad(&k, "given more than once"));
            }
        }
        Ok(Self(map))
    }

    pub(crate) fn str(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    pub(crate) fn uint(&mut self, name: &str, lo: u64, hi: u64) -> Result<Option<u64>, ApiError> {
        match self.str(name) {
            None => Ok(None),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                _ => Err(bad(name, &format!("must be an integer from {lo} to {hi}"))),
            },
        }
    }

    /// Fails on any parameter nobody asked for.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        match self.0.into_keys().min() {
            Some(k) => Err(bad(&k, "unknown query parameter")),
            None => Ok(()),
        }
    }
}

pub(crate) fn bad(name: &str, detail: &str) -> ApiError {
    ApiError::BadRequest {
        field: Some(name.to_owned()),
        detail: format!("query parameter `{name}`: {detail}"),
    }
}

fn decode(s: &str) -> Result<String, ApiError> {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("query", "malformed percent-encoding"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("query", "not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checks_and_rejects_unknown_names() {
        let mut q = Query::parse("state=failed&limit=20&kind=a%3Ab").unwrap();
        assert_eq!(q.str("state").as_deref(), Some("failed"));
        assert_eq!(q.uint("limit", 1, 500).unwrap(), Some(20));
        assert_eq!(q.str("kind").as_deref(), Some("a:b"));
        q.finish().unwrap();

        let mut q = Query::parse("limit=0").unwrap();
        assert!(q.uint("limit", 1, 500).is_err());
        assert!(Query::parse("bogus=1").unwrap().finish().is_err());
        assert!(Query::parse("a=1&a=2").is_err());
        assert!(Query::parse("a=%zz").is_err());
        assert!(
            Query::parse("state=").is_err(),
            "an empty value is not absent"
        );
        assert!(Query::parse("wait").is_err());
    }
}
