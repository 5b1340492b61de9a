//! Token signing keys: Ed25519, kept in the `signing_keys` table so that every replica signs
//! and publishes the same ones. The newest key signs; a key stays in the JWKS until every
//! token it can have signed has expired (its successor's creation plus the token lifetime
//! and a minute), so rotation never invalidates a token early.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use service_common::auth::Claims;
use service_db::{Db, DbError, now_us};
use sqlx::Row;
use tokio::sync::RwLock;

struct Key {
    kid: String,
    created_at: i64,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

/// The keys, as last loaded from the database.
#[derive(Clone)]
pub struct Keys {
    db: Db,
    token_ttl: Duration,
    keys: Arc<RwLock<Vec<Key>>>,
    loaded: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Keys {
    /// Loads the keys, creating the first one if there is none.
    pub async fn open(db: Db, token_ttl: Duration) -> Result<Keys, DbError> {
        let keys = Keys {
            db,
            token_ttl,
            keys: Arc::default(),
            loaded: Arc::default(),
        };
        keys.reload().await?;
        if keys.keys.read().await.is_empty() {
            keys.rotate().await?;
        }
        Ok(keys)
    }

    /// Reads the keys again (another replica may have rotated).
    pub async fn reload(&self) -> Result<(), DbError> {
        let rows =
            sqlx::query("SELECT kid, pkcs8, created_at FROM signing_keys ORDER BY created_at")
                .fetch_all(self.db.pool())
                .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let pkcs8 = STANDARD
                .decode(row.try_get::<String, _>("pkcs8")?)
                .map_err(|e| DbError::Other(format!("a stored key is not base64: {e}")))?;
            let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
                .map_err(|e| DbError::Other(format!("a stored key is not Ed25519: {e}")))?;
            keys.push(Key {
                kid: row.try_get("kid")?,
                created_at: row.try_get("created_at")?,
                public: pair.public_key().as_ref().to_vec(),
                pkcs8,
            });
        }
        *self.keys.write().await = keys;
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        Ok(())
    }

    /// Reads the keys again if the last read is older than `age`.
    pub async fn reload_if_older(&self, age: Duration) -> Result<(), DbError> {
        let stale = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| at.elapsed() > age);
        if stale { self.reload().await } else { Ok(()) }
    }

    /// Creates a new signing key; the previous ones keep verifying their tokens.
    pub async fn rotate(&self) -> Result<String, DbError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| DbError::Other("no randomness for a key".into()))?;
        let kid = service_db::new_id();
        sqlx::query("INSERT INTO signing_keys (kid, pkcs8, created_at) VALUES ($1, $2, $3)")
            .bind(&kid)
            .bind(STANDARD.encode(pkcs8.as_ref()))
            .bind(now_us())
            .execute(self.db.pool())
            .await?;
        self.reload().await?;
        Ok(kid)
    }

    /// The JWKS: the signing key and every older key whose tokens may still be valid.
    pub async fn jwks(&self) -> Value {
        let keys = self.keys.read().await;
        let keep_us = (self.token_ttl + Duration::from_secs(60)).as_micros() as i64;
        let now = now_us();
        let published: Vec<Value> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                keys.get(i + 1)
                    .is_none_or(|next| now - next.created_at < keep_us)
            })
            .map(|(_, k)| {
                json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                       "kid": k.kid, "x": URL_SAFE_NO_PAD.encode(&k.public)})
            })
            .collect();
        json!({ "keys": published })
    }

    /// `claims` signed with the newest key.
    pub async fn sign(&self, claims: &Claims) -> Result<String, DbError> {
        let keys = self.keys.read().await;
        let key = keys
            .last()
            .ok_or_else(|| DbError::Other("no signing key".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&key.pkcs8))
            .map_err(|e| DbError::Other(format!("signing failed: {e}")))
    }
}
