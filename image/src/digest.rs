//! Content digests (`sha256:<hex>`, `sha512:<hex>`), hashing and verification while streaming.

use crate::error::{Error, Result};
use sha2::Digest as _;
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A digest algorithm registered with the OCI image spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256: 64 lowercase hex characters.
    Sha256,
    /// SHA-512: 128 lowercase hex characters.
    Sha512,
}

impl Algorithm {
    /// The name used before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded value.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// A fresh hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(Error::InvalidDigest {
                digest: other.to_string(),
                reason: "unsupported algorithm (sha256 and sha512 are)".into(),
            }),
        }
    }
}

/// A validated content digest: algorithm plus lowercase hex.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    alg: Algorithm,
    hex: String,
}

impl Digest {
    /// Parse and validate `alg:hex`.
    pub fn parse(s: &str) -> Result<Digest> {
        let bad = |reason: &str| Error::InvalidDigest { digest: s.to_string(), reason: reason.to_string() };
        let (alg, hex) = s.split_once(':').ok_or_else(|| bad("expected <algorithm>:<hex>"))?;
        let alg: Algorithm = alg.parse().map_err(|_| bad("unsupported algorithm (sha256 and sha512 are)"))?;
        if hex.len() != alg.hex_len() {
            return Err(bad(&format!("{} needs {} hex characters, got {}", alg.as_str(), alg.hex_len(), hex.len())));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("hex part must be lowercase 0-9a-f"));
        }
        Ok(Digest { alg, hex: hex.to_string() })
    }

    /// Build from an algorithm and raw hash bytes.
    pub fn from_bytes(alg: Algorithm, raw: &[u8]) -> Digest {
        Digest { alg, hex: hex::encode(raw) }
    }

    /// The SHA-256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest::from_bytes(Algorithm::Sha256, &sha2::Sha256::digest(data))
    }

    /// The digest of `data` with `alg`.
    pub fn of(alg: Algorithm, data: &[u8]) -> Digest {
        let mut h = alg.hasher();
        h.update(data);
        h.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The hex-encoded value.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, as `docker images` shows an image ID.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// Check `data` against this digest.
    pub fn verify(&self, data: &[u8]) -> Result<()> {
        let got = Digest::of(self.alg, data);
        if &got == self { Ok(()) } else { Err(Error::DigestMismatch { expected: self.clone(), actual: got }) }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alg.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for either algorithm.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_bytes(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_bytes(Algorithm::Sha512, &h.finalize()),
        }
    }
}

/// A writer that hashes and counts what passes through to the inner writer.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Hasher,
    size: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wrap `inner`, hashing with `alg`.
    pub fn new(inner: W, alg: Algorithm) -> Self {
        DigestWriter { inner, hasher: alg.hasher(), size: 0 }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.size)
    }

    /// The inner writer, borrowed.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what it reads and, at end of input, fails unless the bytes match
/// the expected digest (and size, when given). Nothing read through it should be trusted
/// before it has returned end of input.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_size: Option<u64>,
    size: u64,
}

impl<R: Read> VerifyingReader<R> {
    /// Verify `inner` against `expected` (and `expected_size`, if known).
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> Self {
        let hasher = Some(expected.algorithm().hasher());
        VerifyingReader { inner, hasher, expected, expected_size, size: 0 }
    }

    /// Bytes read so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.size += n as u64;
        if let Some(max) = self.expected_size {
            if self.size > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: more than the expected {max} bytes", self.expected),
                ));
            }
        }
        if n == 0 && !buf.is_empty() {
            if let Some(h) = self.hasher.take() {
                let actual = h.finish();
                if actual != self.expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        Error::DigestMismatch { expected: self.expected.clone(), actual },
                    ));
                }
                if let Some(want) = self.expected_size {
                    if want != self.size {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}: expected {want} bytes, got {}", self.expected, self.size),
                        ));
                    }
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_rejects() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::sha256_of(b""));
        assert!(Digest::parse("sha256:abc").unwrap_err().to_string().contains("64 hex"));
        assert!(Digest::parse(&EMPTY.to_uppercase()).is_err());
        assert!(Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e").is_err());
        assert!(Digest::parse("nocolon").is_err());
        let d512 = Digest::of(Algorithm::Sha512, b"x");
        assert_eq!(Digest::parse(&d512.to_string()).unwrap(), d512);
    }

    #[test]
    fn verifying_reader_catches_mismatch() {
        let d = Digest::sha256_of(b"hello");
        let mut ok = VerifyingReader::new(&b"hello"[..], d.clone(), Some(5));
        let mut out = Vec::new();
        ok.read_to_end(&mut out).unwrap();
        let mut bad = VerifyingReader::new(&b"hellp"[..], d.clone(), None);
        assert!(bad.read_to_end(&mut Vec::new()).is_err());
        let mut long = VerifyingReader::new(&b"hello!"[..], d, Some(5));
        assert!(long.read_to_end(&mut Vec::new()).is_err());
    }
}
