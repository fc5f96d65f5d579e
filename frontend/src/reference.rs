//! Whether a string is an image reference `docker`'s `reference.ParseNormalizedNamed`
//! accepts (for InvalidDefaultArgInFrom): `[domain/]path[:tag][@digest]`, lowercase path
//! components joined by `.`, `_`, `__` or dashes.

/// Whether `s` parses as a (normalizable) named image reference.
pub(crate) fn valid(s: &str) -> bool {
    if s.is_empty() || s.len() > 4096 {
        return false;
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        if !valid_digest(d) {
            return false;
        }
    }
    // A tag follows the last ':' after the last '/'.
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let mut c = t.chars();
        let first_ok = c.next().is_some_and(|f| f.is_ascii_alphanumeric() || f == '_');
        if !first_ok || t.len() > 128 || !c.all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)) {
            return false;
        }
    }
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    // As splitDockerDomain: the first component is a domain if it has '.' or ':', is
    // localhost, or has uppercase letters.
    let (domain, path) = match name.split_once('/') {
        Some((d, p)) if d.contains(['.', ':']) || d == "localhost" || d.to_lowercase() != d => (Some(d), p),
        _ => (None, name),
    };
    if let Some(d) = domain {
        if !valid_domain(d) {
            return false;
        }
    }
    // A bare 64-hex name would be taken for an image ID.
    if domain.is_none() && path.len() == 64 && path.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
        return false;
    }
    path.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or a run of '-'.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !b.get(i).copied().is_some_and(alnum) {
            return false;
        }
    }
    true
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.starts_with('[') || h.ends_with(']') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if host.starts_with('[') {
        return host.ends_with(']') && host.len() > 2;
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else { return false };
    let alg_ok = alg.split(['+', '.', '_', '-']).all(|p| {
        let mut c = p.chars();
        c.next().is_some_and(|f| f.is_ascii_alphabetic()) && c.all(|x| x.is_ascii_alphanumeric())
    });
    alg_ok && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn references() {
        for ok in [
            "alpine",
            "alpine:3.20",
            "library/alpine",
            "localhost:5000/a/b:v1",
            "registry.example.com/x_y__z/a-b--c:latest",
            "scratch",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(valid(ok), "{ok}");
        }
        for bad in ["", "alpine:", "Alpine", "a//b", "-a", "a-", "a:b:c", "x/:tag", "a@sha256:12", "a b"] {
            assert!(!valid(bad), "{bad}");
        }
    }
}
