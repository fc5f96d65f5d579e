//! The auth dance: `WWW-Authenticate` challenges, and the bearer token flow (GET the realm
//! with basic credentials, or POST an OAuth2 refresh token to it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The service name to ask for.
        service: Option<String>,
        /// The scope the registry wanted, when it said.
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header; bearer wins when several challenges are offered.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut found = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        let (scheme, after) = match rest.find(|c: char| c.is_ascii_whitespace()) {
            Some(i) => (&rest[..i], rest[i..].trim_start()),
            None => (rest, ""),
        };
        let (params, tail) = parse_params(after);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => found.push(Challenge::Basic),
            "bearer" => {
                if let Some(realm) = params.get("realm") {
                    found.push(Challenge::Bearer {
                        realm: realm.clone(),
                        service: params.get("service").cloned(),
                        scope: params.get("scope").cloned(),
                    });
                }
            }
            _ => {}
        }
        rest = tail.trim_start_matches([',', ' ']);
    }
    found.iter().find(|c| matches!(c, Challenge::Bearer { .. })).or(found.first()).cloned()
}

/// `k="v", k2=v2` up to the next scheme; returns the map and what is left.
fn parse_params(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut map = BTreeMap::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        let Some(eq) = rest.find('=') else { return (map, rest) };
        let key = &rest[..eq];
        if key.contains(|c: char| c.is_ascii_whitespace()) || key.is_empty() {
            // The next challenge's scheme.
            return (map, rest);
        }
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        map.insert(key.to_ascii_lowercase(), value);
        rest = tail;
    }
}

/// What a token endpoint answers.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// A bearer token and when to stop using it.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
}

impl Token {
    /// From a token response; the spec's default lifetime is 60 s.
    pub fn from_response(r: &TokenResponse) -> Option<Token> {
        let value = r.token.clone().or_else(|| r.access_token.clone()).filter(|t| !t.is_empty())?;
        let life = Duration::from_secs(r.expires_in.unwrap_or(60).max(1));
        // Renew a little early so a token does not expire between check and use.
        let margin = (life / 10).min(Duration::from_secs(10));
        Some(Token { value, expires: Instant::now() + life - margin })
    }

    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.expires
    }
}

/// A token scope for a repository: `repository:<name>:<actions>`.
pub fn repository_scope(repository: &str, actions: &[&str]) -> String {
    format!("repository:{repository}:{}", actions.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="x""#), Some(Challenge::Basic));
        assert!(matches!(
            parse_challenge(r#"Basic realm="x", Bearer realm="https://t/token""#),
            Some(Challenge::Bearer { .. })
        ));
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(""), None);
    }
}
