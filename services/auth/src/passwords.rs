//! Passwords: argon2id hashes (the `argon2` crate's defaults: 19 MiB, 2 passes, 1 lane), and
//! what a new password must be.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 12;

/// Passwords that breach lists always hold; a password that is one of these (in any case,
/// or with digits appended) is refused.
const BREACHED: &[&str] = &[
    "password",
    "passw0rd",
    "123456789012",
    "qwertyuiopas",
    "iloveyou",
    "letmein",
    "welcome",
    "admin",
    "administrator",
    "qwerty",
    "abc123",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "sunshine",
    "princess",
    "trustno1",
    "superman",
    "starwars",
    "whatever",
    "changeme",
    "secret",
    "master",
    "shadow",
    "michael",
    "jennifer",
    "computer",
    "internet",
    "ecommerce",
    "qwertyuiop",
    "1q2w3e4r5t6y",
    "zaq12wsxcde3",
    "correcthorsebatterystaple",
    "p@ssw0rd",
];

/// Why a new password is refused (`None`: it is acceptable).
pub fn weakness(password: &str) -> Option<&'static str> {
    if password.chars().count() < MIN_LENGTH {
        return Some("must be at least 12 characters");
    }
    if password.chars().count() > 1024 {
        return Some("must be at most 1,024 characters");
    }
    let folded = password.to_lowercase();
    let stem = folded.trim_end_matches(|c: char| c.is_ascii_digit() || c == '!');
    if BREACHED.contains(&folded.as_str()) || BREACHED.contains(&stem) {
        return Some("is on lists of breached passwords");
    }
    let first = folded.chars().next();
    if folded.chars().all(|c| Some(c) == first) {
        return Some("must not repeat one character");
    }
    None
}

/// A password could not be hashed (the hasher failed, or its thread did).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// The argon2id hash of `password` (off the async threads: it takes tens of milliseconds).
pub async fn hash(password: String) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

/// Whether `password` matches `hash`.
pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A new random secret: 24 bytes from the system's generator, base64url (32 characters).
pub fn generate_secret() -> String {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Spends what verifying a password costs, for an account that does not exist: a failed
/// login takes as long whether or not the account exists.
pub async fn verify_nothing(password: String) {
    let _ = tokio::task::spawn_blocking(move || {
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").expect("a valid salt");
        let _ = Argon2::default().hash_password(password.as_bytes(), &salt);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_common_and_repeated_passwords_are_weak() {
        for weak in [
            "short",
            "Password1234",
            "PASSWORD!!!!",
            "aaaaaaaaaaaaaa",
            "qwertyuiop12",
            "changeme2024",
        ] {
            assert!(weakness(weak).is_some(), "{weak}");
        }
        assert_eq!(weakness("blue-kettle-on-saturday"), None);
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hashed = hash("blue-kettle-on-saturday".into()).await.unwrap();
        assert!(hashed.starts_with("$argon2id$"));
        assert!(verify("blue-kettle-on-saturday".into(), hashed.clone()).await);
        assert!(!verify("blue-kettle-on-sunday".into(), hashed.clone()).await);
        assert!(!verify("x".into(), "not a hash".into()).await);
    }
}
