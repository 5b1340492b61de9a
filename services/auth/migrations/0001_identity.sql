-- People (the administrator and customers) and machine clients. Times are microseconds since
-- the Unix epoch (UTC).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- The login: a customer's email folded to lower case, or `admin`.
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    -- argon2id, PHC string format.
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'customer')),
    -- The token's subject: the customer id for customers, the user id for the administrator.
    subject TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (username);

CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    -- Space-separated scopes, such as `catalog:write`.
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Token signing keys (Ed25519, PKCS#8 in base64). The newest signs; older ones stay published
-- until every token they signed has expired.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    pkcs8 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
